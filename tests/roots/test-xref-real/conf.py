extensions = ['sphinxext.xref_check']
# the tests assert warnings with their [type.subtype]; the default before Sphinx 8.0 is False
show_warning_types = True
intersphinx_mapping = {
    'python': ('https://docs.python.org/3.11', '/usr/share/doc/python3.11/html/objects.inv'),
    'gevent': ('https://www.gevent.org', '/usr/share/doc/python-gevent-doc/html/objects.inv'),
    'pymongo': (
        'https://pymongo.readthedocs.io/en/3.11.0',
        '/usr/share/doc/python-pymongo-doc/html/objects.inv',
    ),
}

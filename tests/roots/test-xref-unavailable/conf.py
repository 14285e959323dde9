extensions = ['sphinxext.xref_check']
# the tests assert warnings with their [type.subtype]; the default before Sphinx 8.0 is False
show_warning_types = True

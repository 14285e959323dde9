import os

extensions = ['sphinxext.xref_check']
# the tests assert warnings with their [type.subtype]; the default before Sphinx 8.0 is False
show_warning_types = True
# the test serves the inventory on a loopback port and passes its URL here
intersphinx_mapping = {'demo': (os.environ['XREF_TEST_URL'], None)}
xref_check_snapshot = '_inventories'

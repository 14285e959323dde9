import os

extensions = ['sphinxext.xref_check']
# the test serves the inventory on a loopback port and passes its URL here
intersphinx_mapping = {'demo': (os.environ['XREF_TEST_URL'], None)}
xref_check_snapshot = '_inventories'

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

extensions = ['sphinx.ext.autodoc', 'sphinxext.xref_check']
# the tests assert warnings with their [type.subtype]; the default before Sphinx 8.0 is False
show_warning_types = True
autodoc_typehints = 'description'
nitpick_ignore = [('py:class', 'demo.Ignored')]
nitpick_ignore_regex = [(r'py:.*', r'demo\.ignored_.*')]

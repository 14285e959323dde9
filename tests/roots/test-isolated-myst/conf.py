extensions = ['myst_parser', 'sphinxext.isolated_doctest']
myst_enable_extensions = ['colon_fence']
isolated_doctest_timeout = 2

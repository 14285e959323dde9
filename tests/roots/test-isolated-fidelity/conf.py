extensions = ['sphinxext.isolated_doctest']
doctest_global_setup = 'GLOBAL = 42'
doctest_global_cleanup = 'del GLOBAL'

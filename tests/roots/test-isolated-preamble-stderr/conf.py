extensions = ['sphinxext.isolated_doctest']
isolated_doctest_start = 'fork'

extensions = ['sphinxext.isolated_doctest']
isolated_doctest_jobs = 1
isolated_doctest_start = 'fork'

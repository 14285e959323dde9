extensions = ['sphinxext.isolated_doctest']

isolated_doctest_isolation = 'bogus'
isolated_doctest_jobs = 0
isolated_doctest_timeout = -1

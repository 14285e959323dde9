extensions = ['sphinxext.isolated_doctest']
isolated_doctest_jobs = 2

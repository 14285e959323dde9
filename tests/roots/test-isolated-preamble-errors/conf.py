extensions = ['sphinxext.isolated_doctest']

isolated_doctest_preamble = "raise RuntimeError('from conf.py')"

extensions = ['sphinxext.isolated_doctest']
isolated_doctest_sandbox = {'network': False}

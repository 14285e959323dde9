extensions = ['sphinxext.isolated_doctest']
isolated_doctest_preamble = "import builtins; builtins.PRE = 'conf'"

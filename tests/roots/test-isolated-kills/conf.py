extensions = ['sphinxext.isolated_doctest']

extensions = ['sphinxext.xref_check']

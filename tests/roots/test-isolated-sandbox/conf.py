extensions = ['sphinxext.isolated_doctest']
isolated_doctest_sandbox = {
    'env': ['ISOLATED_DOCTEST_SHARED'],
    'network': False,
    'memory': 256 * 2**20,
    'disk': 8 * 2**20,
    'cpu': 2,
}

extensions = ['sphinxext.isolated_doctest']

# Each group notes that it ran, in a file the test names.
doctest_global_setup = '''
import os

def record(name):
    with open(os.environ['ISOLATED_DOCTEST_RUNS'], 'a') as f:
        f.write(name + '\\n')
'''

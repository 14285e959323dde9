extensions = ['sphinxext.isolated_doctest']
# Each group says that it ran, where the test asks it to.
doctest_global_setup = '''
import os

def _ran(name):
    path = os.environ.get("GROUPS_RAN")
    if path:
        with open(path, "a") as log:
            log.write(name + "\\n")
'''

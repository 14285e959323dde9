extensions = ['sphinxext.isolated_doctest']
show_warning_types = True  # the same lines under every Sphinx
# Each group says that it ran, where the test asks it to.
doctest_global_setup = '''
import os

def _ran(name):
    path = os.environ.get("GROUPS_RAN")
    if path:
        with open(path, "a") as log:
            log.write(name + "\\n")
'''

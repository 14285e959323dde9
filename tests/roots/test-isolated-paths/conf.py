import os
import sys

sys.path.insert(0, os.path.abspath('mymod_dir'))

extensions = ['sphinxext.isolated_doctest']
doctest_path = [os.path.abspath('dp_dir')]

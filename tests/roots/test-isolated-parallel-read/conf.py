import os
import time

extensions = ['sphinxext.isolated_doctest']

# Each group notes when it started, on the clock every process shares.
doctest_global_setup = '''
import os, time
with open(os.path.join(os.environ["ISOLATED_DOCTEST_TIMES"], str(os.getpid())), "w") as f:
    f.write(repr(time.monotonic()))
'''


def _slow(app, docname, source):
    time.sleep(0.02)  # reading takes a while, in each reading process


def _read(app, env):
    with open(os.environ["ISOLATED_DOCTEST_READ"], "w") as f:
        f.write(repr(time.monotonic()))


def setup(app):
    app.connect("source-read", _slow)
    app.connect("env-updated", _read)

extensions = ['sphinxext.isolated_doctest']
# The kernel reaps the children of a process that ignores SIGCHLD.
isolated_doctest_preamble = """
import signal
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
"""

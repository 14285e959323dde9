extensions = ['sphinxext.isolated_doctest']


def _set_late(app):
    # After the builder has started, before the tests run.
    app.config.doctest_fail_fast = True
    app.config.doctest_global_setup = "LATE = 'set when the builder started'"


def setup(app):
    app.connect('builder-inited', _set_late)

"""Preambles: run first in a pristine child, set in conf.py, a page or a block."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from isolated_helpers import (
    app_with_start,
    console_status,
    console_warnings,
    output_body,
    sphinx_build,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp







@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-preamble-pristine", freshenv=True)
def test_preamble_starts_before_any_io_module(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list, dict], start: str
) -> None:
    """The preamble records which of socket, ssl, threading... are loaded: none."""
    app = app_with_start(make_app, app_params, start)
    app.build()
    assert output_body(app) == (
        "\nDocument: index\n"
        "---------------\n"
        "2 items passed all tests:\n"
        "   1 tests in default\n"
        "   1 tests in second\n"
        "2 tests in 2 items.\n"
        "2 passed and 0 failed.\n"
        "Test passed.\n"
        "\nDoctest summary\n===============\n    2 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 0


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-preamble-sigchld", freshenv=True)
def test_preamble_that_ignores_sigchld(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list, dict], start: str
) -> None:
    """The fork server still learns how each group's process ended, and each
    group still runs with SIGCHLD ignored."""
    app = app_with_start(make_app, app_params, start)
    app.build()
    assert output_body(app) == (
        "\nDocument: index\n"
        "---------------\n"
        "2 items passed all tests:\n"
        "   2 tests in default\n"
        "   2 tests in second\n"
        "4 tests in 2 items.\n"
        "4 passed and 0 failed.\n"
        "Test passed.\n"
        "\nDoctest summary\n===============\n    4 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 0


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-preamble-order", freshenv=True)
def test_block_beats_page_beats_conf(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list, dict], start: str
) -> None:
    """Each group sees the preamble it should (``PRE``), named ones included."""
    app = app_with_start(make_app, app_params, start)
    # Sphinx 7.x tests an update's documents in set order but a full build's (-a)
    # sorted; later versions always sort.  With -a the report is the same on all.
    app.build(force_all=True)
    body = output_body(app)
    assert body == (
        "\nDocument: index\n"
        "---------------\n"
        "1 items passed all tests:\n"
        "   1 tests in default\n"
        "1 tests in 1 items.\n"
        "1 passed and 0 failed.\n"
        "Test passed.\n"
        "\nDocument: named\n"
        "---------------\n"
        "3 items passed all tests:\n"
        "   2 tests in with-conf\n"
        "   2 tests in with-eventlet\n"
        "   2 tests in with-gevent\n"
        "6 tests in 3 items.\n"
        "6 passed and 0 failed.\n"
        "Test passed.\n"
        "\nDocument: page\n"
        "--------------\n"
        "3 items passed all tests:\n"
        "   1 tests in blockgroup\n"
        "   1 tests in default\n"
        "   1 tests in setupgroup\n"
        "3 tests in 3 items.\n"
        "3 passed and 0 failed.\n"
        "Test passed.\n"
        "\nDoctest summary\n===============\n   10 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 0
    assert console_warnings(app) == ""


@pytest.mark.sphinx(
    "doctest",
    testroot="isolated-preamble-conflict",
    freshenv=True,
    # Warnings end in " [type.subtype]" by default only since Sphinx 8.0.
    confoverrides={"show_warning_types": True},
)
def test_two_preambles_in_one_group(app: SphinxTestApp) -> None:
    app.build()
    message = (
        "group 'g' has two different preambles: \"import builtins; builtins.PRE = 'one'\" "
        "at index.rst:4 and \"import builtins; builtins.PRE = 'two'\" at index.rst:10; "
        "a group runs in one process, so give it one preamble (or split it into two groups)"
    )
    assert console_warnings(app).splitlines() == [
        f"{app.srcdir / 'index.rst'}:10: WARNING: {message} [isolated_doctest.preamble]"
    ]
    assert output_body(app) == (
        "\nDocument: index\n"
        "---------------\n"
        "**********************************************************************\n"
        'File "index.rst", line 4, in g (setup code)\n'
        "Failed example:\n"
        "    import builtins; builtins.PRE = 'one'\n"
        "Cannot run:\n"
        f"    {message}\n"
        "**********************************************************************\n"
        "1 items had failures:\n"
        "   1 of   1 in g (setup code)\n"
        "***Test Failed*** 1 failures.\n"
        "1 items passed all tests:\n"
        "   1 tests in other\n"
        "1 tests in 1 items.\n"
        "1 passed and 0 failed.\n"
        "Test passed.\n"
        "\nDoctest summary\n===============\n    1 test\n    0 failures in tests\n"
        "    1 failure in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 1


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-preamble-errors", freshenv=True)
def test_preamble_error_is_a_setup_failure_where_it_was_set(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list, dict], start: str
) -> None:
    app = app_with_start(make_app, app_params, start)
    app.build()
    lines = output_body(app).splitlines()
    for origin, source, error in [
        ('File "block.rst", line 4', "raise RuntimeError('from the block')", "from the block"),
        ('File "conf.py", line 3', "raise RuntimeError('from conf.py')", "from conf.py"),
        # As written on the page: no smart quotes.
        ('File "meta.rst", line 1', "raise RuntimeError('from the page')", "from the page"),
    ]:
        at = lines.index(f"{origin}, in default (setup code)")
        assert lines[at + 1 : at + 4] == [
            "Failed example:",
            f"    {source}",
            "Exception raised by the preamble:",
        ]
        assert f"    RuntimeError: {error}" in lines[at + 4 : at + 12]
    assert "'not run'" not in lines
    assert lines[-4:] == [
        "    0 tests",
        "    0 failures in tests",
        "    3 failures in setup code",
        "    0 failures in cleanup code",
    ]
    assert app.statuscode == 1


@pytest.mark.sphinx("doctest", testroot="isolated-patch-first", freshenv=True)
def test_page_that_patches_first_passes_without_warning(app: SphinxTestApp, tmp_path: Path) -> None:
    """PyMongo's old page: gevent's patch_all() in its first example, then MongoClient()."""
    app.build()
    assert app.statuscode == 0, output_body(app)
    assert "MonkeyPatchWarning" not in console_status(app)
    assert "MonkeyPatchWarning" not in console_warnings(app)
    assert "\nDocument: patchfirst\n" in output_body(app)
    assert "4 passed and 0 failed." in output_body(app)
    assert socket_module_in_this_process() == "socket"

    # The reference, which runs examples in sphinx-build's own process, leaks the
    # patch into the next page (and must be run in a process of its own here).
    # -a: Sphinx 7.x tests an update's documents in set order but a full build's
    # sorted, so the patching page comes before the plain one there too.
    reference = sphinx_build(
        app.srcdir, tmp_path / "reference", "-a", "-D", "extensions=sphinx.ext.doctest"
    )
    assert reference.returncode == 1, reference.stderr
    output = (tmp_path / "reference" / "output.txt").read_text(encoding="utf-8")
    assert 'File "plain.rst", line 5, in default' in output
    assert "    'gevent._socket3'" in output


def socket_module_in_this_process() -> str:
    import socket

    return socket.socket.__module__


@pytest.mark.sphinx("doctest", testroot="isolated-patch-late", freshenv=True)
def test_child_stderr_is_relayed(app: SphinxTestApp, capsys: pytest.CaptureFixture[str]) -> None:
    """The control for the test above: a late patch's MonkeyPatchWarning is seen,
    on sphinx-build's stderr as in one process, under a line that says whose it is."""
    app.build()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "stderr of index.rst, group 'default':"
    assert err[1].startswith(
        "<doctest default[1]>:1: MonkeyPatchWarning: Monkey-patching ssl after ssl "
        "has already been imported"
    )
    assert "MonkeyPatchWarning" not in output_body(app)  # console only, as in one process
    assert "MonkeyPatchWarning" not in console_status(app)
    assert app.statuscode == 0


@pytest.mark.parametrize("verbosity", [0, 1])
@pytest.mark.sphinx("doctest", testroot="isolated-preamble-stderr", freshenv=True)
def test_preamble_stderr_once_per_server(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list, dict],
    verbosity: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A fork server's stderr is shown once, on sphinx-build's stderr, under its
    preamble; the deprecation notice a named preamble's import prints on every
    run (eventlet's) only with -v."""
    args, kwargs = app_params
    app = make_app(*args, **kwargs, verbosity=verbosity)
    app.build()
    err = capsys.readouterr().err
    assert err == "stderr of the custom preamble (set at index.rst:11):\nthe loud preamble ran\n"
    status = console_status(app)
    notice = (
        "stderr of the eventlet preamble (set at index.rst:4):\n"
        "    <preamble set at index.rst:4>:1: EventletDeprecationWarning: \n"
        "    Eventlet is deprecated."
    )
    assert (notice in status) == bool(verbosity)
    assert status.count("stderr of the") == verbosity
    assert app.statuscode == 0

"""Preambles: run first in a pristine child, set in conf.py, a page or a block."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from isolated_helpers import (
    ROOTS,
    app_with_start,
    console_status,
    console_warnings,
    output_body,
    sphinx_build,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

DIVIDER = "*" * 70







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
        "at index.rst:5 and \"import builtins; builtins.PRE = 'two'\" at index.rst:11; "
        "a group runs in one process, so give it one preamble (or split it into two groups)"
    )
    assert console_warnings(app).splitlines() == [
        f"{app.srcdir / 'index.rst'}:11: WARNING: {message} [isolated_doctest.preamble]"
    ]
    assert output_body(app) == (
        "\nDocument: index\n"
        "---------------\n"
        "**********************************************************************\n"
        'File "index.rst", line 5, in g (setup code)\n'
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


def _preamble_failure(srcdir: Path, at: str, source: str, traceback: list[str]) -> str:
    """A preamble's failure as output.txt reports it: at the line that set it,
    with only the preamble's own frames (as it ran: the file's line may say more)."""
    path, line = at.split(":")
    lines = "".join(f"    {text}\n" for text in traceback)
    return (
        f"{DIVIDER}\n"
        f'File "{path}", line {line}, in default (setup code)\n'
        "Failed example:\n"
        f"    {source}\n"
        "Exception raised by the preamble:\n"
        f"{lines}".replace("SRCDIR", str(srcdir))
    )


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-preamble-errors", freshenv=True)
def test_preamble_error_is_a_setup_failure_where_it_was_set(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list, dict], start: str
) -> None:
    app = app_with_start(make_app, app_params, start)
    app.build()
    body = output_body(app)
    for at, source, error in [
        ("block.rst:5", "raise RuntimeError('from the block')", "from the block"),
        ("conf.py:3", "raise RuntimeError('from conf.py')", "from conf.py"),
        # As written on the page: no smart quotes.
        ("meta.rst:1", "raise RuntimeError('from the page')", "from the page"),
    ]:
        path, line = at.split(":")
        assert _preamble_failure(app.srcdir, at, source, [
            "Traceback (most recent call last):",
            f'  File "SRCDIR/{path}", line {line}, in <module>',
            f"    {source}",
            f"RuntimeError: {error}",
        ]) in body
    # A syntax error: the error alone, no frame of the compile() that found it.
    assert _preamble_failure(app.srcdir, "syntax.rst:5", "import os; os.(", [
        '  File "SRCDIR/syntax.rst", line 5',
        "    import os; os.(",
        "                  ^",
        "SyntaxError: invalid syntax",
    ]) in body
    assert "_child.py" not in body
    assert "'not run'" not in body
    assert body.endswith(
        "    0 tests\n"
        "    0 failures in tests\n"
        "    4 failures in setup code\n"
        "    0 failures in cleanup code\n"
    )
    assert app.statuscode == 1


def _cannot_run(at: str, group: str, name: str, why: str) -> str:
    path, line = at.split(":")
    return (
        f"{DIVIDER}\n"
        f'File "{path}", line {line}, in {group} (setup code)\n'
        "Failed example:\n"
        f"    {name}\n"
        "Cannot run:\n"
        f"    {why}\n"
    )


GEVNET = "unknown preamble 'gevnet'; did you mean 'gevent'? Python source must be more than a name"


@pytest.mark.sphinx(
    "doctest", testroot="isolated-preamble-names", freshenv=True,
    # Warnings end in " [type.subtype]" by default only since Sphinx 8.0.
    confoverrides={"show_warning_types": True},
)
def test_a_misspelt_preamble_name_is_an_error_at_its_line(app: SphinxTestApp) -> None:
    """A bare name that no preamble has is not run as Python source (where it
    would fail with a NameError in every group): its groups cannot run."""
    app.build()
    eventlett = (
        "unknown preamble 'eventlett'; did you mean 'eventlet'? "
        "Python source must be more than a name"
    )
    numpy = (
        "unknown preamble 'numpy'; the known ones are 'eventlet' and 'gevent'; "
        "Python source must be more than a name"
    )
    assert console_warnings(app).splitlines() == [
        f"{app.srcdir / 'block.rst'}:5: ERROR: {eventlett} [isolated_doctest.preamble]",
        f"{app.srcdir / 'block.rst'}:11: ERROR: {numpy} [isolated_doctest.preamble]",
        f"{app.srcdir / 'field.rst'}:1: ERROR: {GEVNET} [isolated_doctest.preamble]",
    ]
    body = output_body(app)
    assert _cannot_run("block.rst:5", "close", "eventlett", eventlett) in body
    assert _cannot_run("block.rst:11", "far", "numpy", numpy) in body
    assert _cannot_run("field.rst:1", "default", "gevnet", GEVNET) in body
    assert "   1 tests in source\n" in body  # Python source runs
    assert body.endswith(
        "    2 tests\n    0 failures in tests\n    3 failures in setup code\n"
        "    0 failures in cleanup code\n"
    )
    assert app.statuscode == 1


def test_a_misspelt_preamble_name_in_conf_py(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-preamble-names", srcdir)
    with (srcdir / "conf.py").open("a") as conf:
        conf.write("show_warning_types = True\nisolated_doctest_preamble = 'gevnet'\n")
    app = make_app("doctest", srcdir=srcdir, freshenv=True)
    try:
        app.build()
    finally:
        app.cleanup()
    assert console_warnings(app).splitlines()[0] == (
        f"{srcdir / 'conf.py'}:3: ERROR: {GEVNET} [isolated_doctest.preamble]"
    )
    # Every group that would run after it cannot, and says why, where it is set.
    assert _cannot_run("conf.py:3", "default", "gevnet", GEVNET) in output_body(app)
    assert "   1 tests in source\n" in output_body(app)
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
    run (eventlet's) only with -v, at the line that names the preamble."""
    args, kwargs = app_params
    app = make_app(*args, **kwargs, verbosity=verbosity)
    app.build()
    err = capsys.readouterr().err
    assert err == "stderr of the custom preamble (set at index.rst:12):\nthe loud preamble ran\n"
    status = console_status(app)
    notice = (
        "stderr of the eventlet preamble (set at index.rst:5):\n"
        f"    {app.srcdir / 'index.rst'}:5: EventletDeprecationWarning: \n"
        "    Eventlet is deprecated."
    )
    assert (notice in status) == bool(verbosity)
    assert status.count("stderr of the") == verbosity
    assert app.statuscode == 0

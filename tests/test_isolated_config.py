"""Bad settings and options: a line that names the file, the value and the fix."""

from __future__ import annotations

import os
import shutil
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from isolated_helpers import console_warnings, output_body
from sphinx.util.console import strip_escape_sequences

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

ROOTS = Path(__file__).parent / "roots"
# Warnings end in " [type.subtype]" by default only since Sphinx 8.0.
SHOW_TYPES = {"show_warning_types": True}



def test_bad_values_each_error_then_the_build_runs_with_defaults_and_fails(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    """One line per bad value, at its line in conf.py; no crash report (which
    sphinx-build prints for any exception raised while it starts); every group
    still runs, with the defaults; the exit status is 1."""
    srcdir = tmp_path / "bad-config"
    shutil.copytree(ROOTS / "test-isolated-bad-config", srcdir)
    app = make_app("doctest", srcdir=srcdir, freshenv=True, confoverrides=SHOW_TYPES)
    conf = srcdir / "conf.py"
    assert console_warnings(app).splitlines() == [
        f"{conf}:3: ERROR: isolated_doctest_isolation = 'bogus': use one of 'group', "
        "'document', 'block'; this build runs with the default, 'group', and fails "
        "[isolated_doctest.config]",
        f"{conf}:5: ERROR: isolated_doctest_timeout = -1: use a number of seconds, or 0 "
        "for none; this build runs with the default, 120, and fails [isolated_doctest.config]",
        f"{conf}:4: ERROR: isolated_doctest_jobs = 0: use 'auto' or a whole number from 1; "
        "this build runs with the default, 'auto', and fails [isolated_doctest.config]",
    ]
    settings = app.builder.settings
    assert (settings.isolation, settings.timeout, settings.jobs) == ("group", 120, os.cpu_count())
    app.build()
    assert "1 passed and 0 failed." in output_body(app)
    assert app.statuscode == 1


@pytest.mark.parametrize(
    ("name", "value", "message", "default"),
    [
        ("isolated_doctest_start", "thread", "use one of 'auto', 'fork', 'spawn'", "'auto'"),
        ("isolated_doctest_jobs", "many", "use 'auto' or a whole number from 1", "'auto'"),
        ("isolated_doctest_jobs", True, "use 'auto' or a whole number from 1", "'auto'"),
        ("isolated_doctest_timeout", -1.5, "use a number of seconds, or 0 for none", "120"),
    ],
)
def test_bad_override_is_named_as_one(
    make_app: Callable[..., SphinxTestApp],
    tmp_path: Path,
    name: str,
    value: object,
    message: str,
    default: str,
) -> None:
    """A value given with -D has no line in conf.py: the message says where it came from."""
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-cache", srcdir)
    app = make_app(
        "doctest", srcdir=srcdir, freshenv=True, confoverrides={**SHOW_TYPES, name: value}
    )
    assert console_warnings(app).splitlines() == [
        f"ERROR: {name} = {value!r} (set with -D): {message}; this build runs with the "
        f"default, {default}, and fails [isolated_doctest.config]"
    ]
    assert app.statuscode == 1


def test_without_pidfds_auto_spawns_and_fork_says_to(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the fork server cannot watch its children (no pidfds: not Linux,
    or a kernel before 5.3), the default start method spawns and says so once;
    asking for ``'fork'`` is an error: the build spawns and fails."""
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-cache", srcdir)
    # Here, with pidfds, the default forks, and says nothing about it.
    monkeypatch.setenv("ISOLATED_DOCTEST_RUNS", str(tmp_path / "forked"))
    status = StringIO()
    app = make_app("doctest", srcdir=srcdir, freshenv=True, status=status)
    assert app.builder.settings.start_method == "fork"
    app.build()
    assert "fork server" not in status.getvalue()
    assert sorted((tmp_path / "forked").read_text().split()) == ["a", "b", "c"]
    app.cleanup()

    monkeypatch.setenv("ISOLATED_DOCTEST_RUNS", str(tmp_path / "runs"))

    monkeypatch.delattr(os, "pidfd_open")
    app = make_app("doctest", srcdir=srcdir, freshenv=True,
                   confoverrides={**SHOW_TYPES, "isolated_doctest_start": "fork"})
    assert console_warnings(app).splitlines() == [
        "ERROR: isolated_doctest_start = 'fork' (set with -D): it needs os.fork and "
        "os.pidfd_open (Linux 5.3 or later): use 'auto' or 'spawn' here; this build runs "
        "with the default, 'auto', and fails [isolated_doctest.config]"
    ]
    assert app.builder.settings.start_method == "spawn"
    assert app.statuscode == 1
    app.cleanup()
    status = StringIO()
    app = make_app("doctest", srcdir=srcdir, freshenv=True, status=status)
    app.build()
    lines = strip_escape_sequences(status.getvalue()).splitlines()
    said = "isolated_doctest_start = 'auto': no fork server here (it needs Linux 5.3 or later)"
    assert [line for line in lines if "fork server" in line] == [
        f"{said}, so every group starts a fresh interpreter"
    ]
    # Spawned instead, all three groups run (b fails by design of the root).
    assert sorted((tmp_path / "runs").read_text().split()) == ["a", "b", "c"]
    assert app.statuscode == 1


@pytest.mark.sphinx(
    "doctest", testroot="isolated-bad-option", freshenv=True, confoverrides=SHOW_TYPES
)
def test_bad_timeout_option_is_docutils_error_at_its_line(app: SphinxTestApp) -> None:
    app.build()
    warnings = strip_escape_sequences(app.warning.getvalue())
    index = app.srcdir / "index.rst"
    assert warnings == (
        f'{index}:4: ERROR: Error in "doctest" directive:\n'
        "invalid option value: (option: \"timeout\"; value: 'abc')\n"
        "'abc' is not a number of seconds (use e.g. 30, or 0 for none).\n"
        "\n"
        ".. doctest::\n"
        "   :timeout: abc\n"
        "\n"
        "   >>> 'not a number'\n"
        "   'not a number' [docutils]\n"
        f'{index}:10: ERROR: Error in "testcode" directive:\n'
        "invalid option value: (option: \"timeout\"; value: '-1')\n"
        "'-1': a timeout cannot be negative (use 0 for none).\n"
        "\n"
        ".. testcode::\n"
        "   :timeout: -1\n"
        "\n"
        "   print('negative') [docutils]\n"
    )
    assert "Traceback" not in warnings
    # The rest of the page still runs.
    assert "1 passed and 0 failed." in output_body(app)
    assert app.statuscode == 0


@pytest.mark.parametrize(
    "extensions",
    [
        ["sphinx.ext.doctest", "sphinxext.isolated_doctest"],
        ["sphinxext.isolated_doctest", "sphinx.ext.doctest"],
    ],
)
def test_both_extensions_is_an_error(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, extensions: list[str]
) -> None:
    """In either order: one line that says what to remove, no crash report,
    the reference builder alone runs, and the build fails."""
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-cache", srcdir)
    app = make_app(
        "doctest", srcdir=srcdir, freshenv=True,
        confoverrides={**SHOW_TYPES, "extensions": extensions},
    )
    assert console_warnings(app).splitlines() == [
        f"{srcdir / 'conf.py'}:1: ERROR: while setting up extension "
        "sphinxext.isolated_doctest: sphinxext.isolated_doctest replaces sphinx.ext.doctest: "
        "remove 'sphinx.ext.doctest' from extensions in conf.py; this build runs "
        "sphinx.ext.doctest alone and fails [isolated_doctest.config]"
    ]
    assert type(app.builder).__module__ == "sphinx.ext.doctest"
    assert app.statuscode == 1

"""Bad settings and options: a line that names the file, the value and the fix."""

from __future__ import annotations

import os
import shutil
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sphinx.errors import ConfigError, ExtensionError
from sphinx.util.console import strip_escape_sequences

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

ROOTS = Path(__file__).parent / "roots"
# Warnings end in " [type.subtype]" by default only since Sphinx 8.0.
SHOW_TYPES = {"show_warning_types": True}



def test_bad_values_each_warn_then_one_config_error(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    srcdir = tmp_path / "bad-config"
    shutil.copytree(ROOTS / "test-isolated-bad-config", srcdir)
    warning = StringIO()
    with pytest.raises(ConfigError) as error:
        make_app("doctest", srcdir=srcdir, freshenv=True, warning=warning, confoverrides=SHOW_TYPES)
    assert str(error.value) == (
        "3 isolated_doctest setting(s) in conf.py cannot be used; see the warnings above"
    )
    conf = srcdir / "conf.py"
    assert sorted(strip_escape_sequences(warning.getvalue()).splitlines()) == [
        f"{conf}:3: WARNING: isolated_doctest_isolation = 'bogus': "
        "use one of 'group', 'document', 'block' [isolated_doctest.config]",
        f"{conf}:4: WARNING: isolated_doctest_jobs = 0: "
        "use 'auto' or a whole number from 1 [isolated_doctest.config]",
        f"{conf}:5: WARNING: isolated_doctest_timeout = -1: "
        "use a number of seconds, or 0 for none [isolated_doctest.config]",
    ]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("isolated_doctest_start", "thread", "use one of 'auto', 'fork', 'spawn'"),
        ("isolated_doctest_jobs", "many", "use 'auto' or a whole number from 1"),
        ("isolated_doctest_jobs", True, "use 'auto' or a whole number from 1"),
        ("isolated_doctest_timeout", -1.5, "use a number of seconds, or 0 for none"),
    ],
)
def test_bad_override_is_named(
    make_app: Callable[..., SphinxTestApp],
    tmp_path: Path,
    name: str,
    value: object,
    message: str,
) -> None:
    """A value given with -D (not in conf.py) is still reported, against conf.py."""
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-cache", srcdir)
    warning = StringIO()
    with pytest.raises(ConfigError):
        make_app(
            "doctest",
            srcdir=srcdir,
            freshenv=True,
            warning=warning,
            confoverrides={**SHOW_TYPES, name: value},
        )
    # Sphinx reads a location without ':' as a document name, and there is no
    # environment yet: so a value set with -D (no line in conf.py) shows as "conf.py::".
    assert strip_escape_sequences(warning.getvalue()).splitlines() == [
        f"{srcdir / 'conf.py'}:: WARNING: {name} = {value!r}: {message} [isolated_doctest.config]"
    ]


def test_without_pidfds_auto_spawns_and_fork_says_to(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the fork server cannot watch its children (no pidfds: not Linux,
    or a kernel before 5.3), the default start method spawns and says so once;
    asking for ``'fork'`` stops the build at once."""
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
    warning = StringIO()
    with pytest.raises(ConfigError):
        make_app("doctest", srcdir=srcdir, freshenv=True, warning=warning,
                 confoverrides={**SHOW_TYPES, "isolated_doctest_start": "fork"})
    assert strip_escape_sequences(warning.getvalue()).splitlines() == [
        f"{srcdir / 'conf.py'}:: WARNING: isolated_doctest_start = 'fork' needs os.fork and "
        "os.pidfd_open (Linux 5.3 or later): use 'spawn' here [isolated_doctest.config]"
    ]
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
    assert "1 passed and 0 failed." in (app.outdir / "output.txt").read_text()
    assert app.statuscode == 0


def test_both_extensions_is_an_error(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-cache", srcdir)
    with pytest.raises(ExtensionError, match=r"remove 'sphinx\.ext\.doctest' from extensions"):
        make_app(
            "doctest",
            srcdir=srcdir,
            freshenv=True,
            confoverrides={"extensions": ["sphinx.ext.doctest", "sphinxext.isolated_doctest"]},
        )

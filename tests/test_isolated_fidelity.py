"""The isolated builder reports exactly what sphinx.ext.doctest reports.

Each test builds the same test root twice, once with each extension, and
compares output.txt (all but its date line), the console report and the exit
status.  The reference runs examples inside the test process, so the root used
here leaks nothing: no monkey-patching, no global state beyond its namespaces.
"""

from __future__ import annotations

import doctest
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sphinx
import sphinx.ext.doctest
from isolated_helpers import ROOTS, build_with, sphinx_build

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sphinx.testing.util import SphinxTestApp

OURS = "sphinxext.isolated_doctest"
REFERENCE = "sphinx.ext.doctest"


@pytest.fixture(autouse=True)
def _restore_doctest_compile() -> Iterator[None]:
    # The reference builder replaces doctest.compile for good; put it back.
    saved = doctest.__dict__.get("compile")
    yield
    if saved is None:
        doctest.__dict__.pop("compile", None)
    else:
        doctest.compile = saved  # type: ignore[attr-defined]


VARIANTS = {
    "defaults": {},
    "document": {"isolated_doctest_isolation": "document"},
    "spawn": {"isolated_doctest_start": "spawn"},
    "jobs-1": {"isolated_doctest_jobs": 1},
    "jobs-2": {"isolated_doctest_jobs": 2},
    "no-successes": {"doctest_show_successes": False},
    "fail-fast": {"doctest_fail_fast": True},
    "no-doctest-blocks": {"doctest_test_doctest_blocks": ""},
    "no-cache": {"isolated_doctest_cache": False},
    "default-flags": {"doctest_default_flags": 0},
}


NOT_IN_REFERENCE = {
    "fail-fast": pytest.mark.skipif(
        sphinx.version_info < (9,),
        reason="doctest_fail_fast is new in Sphinx 9: the reference ignores it before, "
        "so there is nothing to compare with (test_fail_fast_report checks ours)",
    ),
}


@pytest.mark.parametrize(
    "conf",
    [
        pytest.param(conf, id=name, marks=NOT_IN_REFERENCE.get(name, ()))
        for name, conf in VARIANTS.items()
    ],
)
def test_same_report_as_reference(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, conf: dict[str, Any]
) -> None:
    ours, ours_status, ours_warnings, ours_code = build_with(
        make_app, tmp_path, OURS, "isolated-fidelity", **conf
    )
    # The reference does not know our settings (and would warn about them).
    ref_conf = {k: v for k, v in conf.items() if not k.startswith("isolated_doctest_")}
    ref, ref_status, ref_warnings, ref_code = build_with(
        make_app, tmp_path, REFERENCE, "isolated-fidelity", **ref_conf
    )
    assert ours == ref
    assert ours_code == ref_code == 1
    assert ours_warnings == ref_warnings
    # The console shows the same report (our own progress lines aside).
    assert ref in ref_status
    assert ours in ours_status
    assert "testing pages..." in ours_status  # ours ran in children, not in-process


def test_reference_report_lines(make_app: Callable[..., SphinxTestApp], tmp_path: Path) -> None:
    """Spot-check the shared report, so that a change in both cannot go unseen."""
    body, _status, _warnings, code = build_with(make_app, tmp_path, OURS, "isolated-fidelity")
    assert code == 1
    # Python 3.13's doctest counts the example that :pyversion: skips as a test.
    skipped = 1 if sys.version_info >= (3, 13) else 0
    lines = body.splitlines()
    for expected in [
        'File "failing.rst", line 4, in default',
        'File "failing.rst", line 11, in default',
        'File "failing.rst", line 24, in default',
        "    SystemExit: 3",
        'File "failing.rst", line 59, in default',
        'File "<global_setup>", line 47, in broken-setup (setup code)',
        'File "failing.rst", line 56, in broken-cleanup (cleanup code)',
        'File "failing.rst", line 67, in later',
        "   7 of  10 in default",
        f"  {12 + skipped} tests in default",
        "   4 tests in g1",
        "   1 tests in g2",
    ]:
        assert expected in lines
    assert body.endswith(
        "\nDoctest summary\n"
        "===============\n"
        f"   {32 + skipped} tests\n"
        "    8 failures in tests\n"
        "    1 failure in setup code\n"
        "    1 failure in cleanup code\n"
    )
    # Skipped blocks (:skipif:, :pyversion:) never ran.
    assert "not run" not in body
    assert "this is not run" not in body


def test_passing_docs_exit_zero_like_reference(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    ours, _, _, ours_code = build_with(
        make_app, tmp_path, OURS, "isolated-fidelity", exclude_patterns=["failing.rst"]
    )
    ref, _, _, ref_code = build_with(
        make_app, tmp_path, REFERENCE, "isolated-fidelity", exclude_patterns=["failing.rst"]
    )
    assert ours == ref
    assert ours_code == ref_code == 0
    assert ours.endswith(
        "    0 failures in tests\n    0 failures in setup code\n    0 failures in cleanup code\n"
    )


def test_named_pages_only_like_reference(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    """Sphinx reads every page of a fresh build, and ours starts their groups as
    it reads them; with pages named, only those are tested and reported."""
    ours, _, ours_warnings, ours_code = build_with(
        make_app, tmp_path, OURS, "isolated-fidelity", pages=("failing.rst",)
    )
    ref, _, ref_warnings, ref_code = build_with(
        make_app, tmp_path, REFERENCE, "isolated-fidelity", pages=("failing.rst",)
    )
    assert ours == ref
    assert ours_code == ref_code == 1
    assert ours_warnings == ref_warnings
    assert "Document: failing\n" in ours
    assert "Document: passing" not in ours


def test_fail_fast_report(make_app: Callable[..., SphinxTestApp], tmp_path: Path) -> None:
    """doctest_fail_fast on every Sphinx version, not only where the reference has it:
    the first failing group is reported in full, then nothing more runs.

    Sphinx 9's reference gives this same report.  Built with -a: Sphinx 7.x tests an
    update's documents in set order but a full build's sorted, and which failure comes
    first must not depend on it.
    """
    body, status, warnings, code = build_with(
        make_app,
        tmp_path,
        OURS,
        "isolated-fidelity",
        force_all=True,
        doctest_fail_fast=True,
    )
    assert body == (
        "\nDocument: failing\n"
        "-----------------\n"
        "**********************************************************************\n"
        'File "failing.rst", line 4, in default\n'
        "Failed example:\n"
        "    1 + 1\n"
        "Expected:\n"
        "    3\n"
        "Got:\n"
        "    2\n"
        "**********************************************************************\n"
        'File "failing.rst", line 6, in default\n'
        "Failed example:\n"
        "    print('a long line')  # doctest: -ELLIPSIS\n"
        "Expected:\n"
        "    a ... line\n"
        "Got:\n"
        "    a long line\n"
        "**********************************************************************\n"
        "1 items had failures:\n"
        "   2 of   2 in default\n"
        "2 tests in 1 items.\n"
        "0 passed and 2 failed.\n"
        "***Test Failed*** 2 failures.\n"
        "1 items passed all tests:\n"
        "   1 tests in default (cleanup code)\n"
        "1 tests in 1 items.\n"
        "1 passed and 0 failed.\n"
        "Test passed.\n"
        "\n"
        "Doctest summary (exiting after first failed test)\n"
        "=================================================\n"
        "    2 tests\n"
        "    2 failures in tests\n"
        "    0 failures in setup code\n"
        "    0 failures in cleanup code\n"
    )
    assert code == 1
    assert warnings == ""
    assert body in status


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_runner_details_like_reference(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, start: str
) -> None:
    """What the reference's runner does beyond doctest's: a traceback through a
    function an earlier block defined (doctest alone fails on it, and the rest of
    the group is lost), and the compile hook's frame in a syntax error's."""
    ours, _, ours_warnings, ours_code = build_with(
        make_app, tmp_path, OURS, "isolated-runner", isolated_doctest_start=start
    )
    ref, _, ref_warnings, ref_code = build_with(make_app, tmp_path, REFERENCE, "isolated-runner")
    assert ours == ref
    assert ours_warnings == ref_warnings
    assert ours_code == ref_code == 1
    lines = ours.splitlines()
    assert "   4 tests in default" in lines  # boom() as expected, then 1 + 1
    assert "   1 of   3 in failing" in lines
    # The frame of the hook that compiles in 'exec' mode is the reference's own.
    hook = f'      File "{sphinx.ext.doctest.__file__}", line '
    assert [line.startswith(hook) for line in lines].count(True) == 2
    assert "_child.py" not in ours


def test_settings_changed_after_the_builder_started(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    """conf.py's ``builder-inited`` handler turns on fail-fast and sets the global
    setup: read when the tests run, as the reference reads them."""
    ours, _, ours_warnings, code = build_with(make_app, tmp_path, OURS, "isolated-late-config")
    assert ours == (
        "\nDocument: index\n"
        "---------------\n"
        "**********************************************************************\n"
        'File "index.rst", line 9, in default\n'
        "Failed example:\n"
        "    1 + 1\n"
        "Expected:\n"
        "    3\n"
        "Got:\n"
        "    2\n"
        "**********************************************************************\n"
        "1 items had failures:\n"
        "   1 of   2 in default\n"
        "2 tests in 1 items.\n"
        "1 passed and 1 failed.\n"
        "***Test Failed*** 1 failures.\n"
        "\n"
        "Doctest summary (exiting after first failed test)\n"
        "=================================================\n"
        "    2 tests\n"
        "    1 failure in tests\n"
        "    0 failures in setup code\n"
        "    0 failures in cleanup code\n"
    )
    assert code == 1
    assert ours_warnings == ""
    if sphinx.version_info >= (9,):  # the reference has doctest_fail_fast since 9.0
        ref, _, ref_warnings, ref_code = build_with(
            make_app, tmp_path, REFERENCE, "isolated-late-config"
        )
        assert (ours, ours_warnings, code) == (ref, ref_warnings, ref_code)


def test_no_colour_in_the_report(tmp_path: Path) -> None:
    """Python 3.13 colours doctest's reports where stderr is a terminal or
    FORCE_COLOR is set; output.txt never has colour codes."""
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-fidelity", srcdir)
    plain = sphinx_build(srcdir, tmp_path / "plain", env={**os.environ, "NO_COLOR": "1"})
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = sphinx_build(srcdir, tmp_path / "forced", env={**env, "FORCE_COLOR": "1"})
    assert plain.returncode == coloured.returncode == 1
    bodies = [
        (tmp_path / name / "output.txt").read_text(encoding="utf-8").split("\n", 2)[2]
        for name in ("plain", "forced")
    ]
    assert bodies[0] == bodies[1]
    assert "\x1b[" not in bodies[1]
    assert "***Test Failed***" in bodies[1]

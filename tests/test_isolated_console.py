"""What examples write to their stdout and stderr, and their Python warnings,
reach sphinx-build's own streams as with sphinx.ext.doctest: the same text, in
the same place among the failure reports, under -q too; each part under a line
that says which page and group wrote it.

The reference runs examples inside sphinx-build, so both are run as
sphinx-build processes here (in the test process, pytest would turn the
examples' warnings into errors).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
from isolated_helpers import ROOTS, sphinx_build

if TYPE_CHECKING:
    from pathlib import Path

FAILURE = (
    "**********************************************************************\n"
    'File "index.rst", line 10, in default\n'
    "Failed example:\n"
    "    1 + 1\n"
    "Expected:\n"
    "    3\n"
    "Got:\n"
    "    2\n"
)

#: What each group writes to its stderr, before its failure (if any), as
#: sphinx-build shows it.
DEFAULT_STDERR = (
    "stderr of index.rst, group 'default':\n"
    "<doctest default[1]>:1: UserWarning: careful\n"
    '  warnings.warn("careful")\n'
    "to stderr\n"
)
SECOND_STDERR = (
    "stderr of index.rst, group 'second':\n"
    "<doctest second[2]>:1: UserWarning: careful again\n"
    '  warnings.warn("careful again")\n'
)


def _build(tmp_path: Path, extension: str, quiet: bool) -> tuple[str, str, int]:
    srcdir = tmp_path / extension
    shutil.copytree(ROOTS / "test-isolated-stderr", srcdir)
    build = sphinx_build(
        srcdir, tmp_path / f"out-{extension}", "-D", f"extensions={extension}", quiet=quiet
    )
    return build.stdout, build.stderr, build.returncode


def _without_headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(("stderr of ", "stdout of "))]


def test_stderr_and_warnings_under_q(tmp_path: Path) -> None:
    """Under -q the failure reports go to stderr too: each part of an example's
    stderr stands where the reference writes it, before or after them."""
    out, err, code = _build(tmp_path, "sphinxext.isolated_doctest", quiet=True)
    ref_out, ref_err, ref_code = _build(tmp_path, "sphinx.ext.doctest", quiet=True)
    assert err == (
        f"{DEFAULT_STDERR}WARNING: {FAILURE}\n"
        f"stderr of index.rst, group 'default':\nfd two\n{SECOND_STDERR}"
    )
    assert _without_headers(err) == ref_err.splitlines()
    assert out == "stdout of index.rst, group 'default':\nfd one\n"
    assert _without_headers(out) == ref_out.splitlines() == ["fd one"]
    assert code == ref_code == 1


def test_stderr_and_stdout_with_the_report(tmp_path: Path) -> None:
    """Without -q the report is on stdout, and what an example wrote to its
    stdout follows the failure it wrote after, as in the reference."""
    out, err, code = _build(tmp_path, "sphinxext.isolated_doctest", quiet=False)
    ref_out, ref_err, ref_code = _build(tmp_path, "sphinx.ext.doctest", quiet=False)
    assert err == f"{DEFAULT_STDERR}fd two\n{SECOND_STDERR}"
    assert _without_headers(err) == ref_err.splitlines()
    report = f"{FAILURE}stdout of index.rst, group 'default':\nfd one\n1 items passed all tests:\n"
    assert report in out
    assert report.replace("stdout of index.rst, group 'default':\n", "") in ref_out
    assert code == ref_code == 1


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_preambles_stderr_is_shown_once(tmp_path: Path, start: str) -> None:
    """A preamble runs before every group (spawned) or once per fork server:
    what it writes is shown once either way, under the line that set it."""
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-stderr", srcdir)
    (srcdir / "conf.py").write_text(
        "extensions = ['sphinxext.isolated_doctest']\n"
        "isolated_doctest_preamble = 'import sys; sys.stderr.write(\"preamble ran\\\\n\")'\n"
    )
    build = sphinx_build(srcdir, tmp_path / "out", "-D", f"isolated_doctest_start={start}")
    lines = build.stderr.splitlines()
    at = lines.index("stderr of the custom preamble (set at conf.py:2):")
    assert lines[at + 1] == "preamble ran"
    assert lines.count("preamble ran") == 1
    assert build.returncode == 1

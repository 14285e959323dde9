"""``python -m sphinxext.isolated_doctest``: exit statuses, selection, progress."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from isolated_helpers import ROOTS

PROG = "python -m sphinxext.isolated_doctest"
USAGE = f"usage: {PROG} [-h] [-c DIR]"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with passing, failing, skipped, hanging and crashing groups."""
    shutil.copytree(ROOTS / "test-pytest-plugin", tmp_path, dirs_exist_ok=True)
    return tmp_path


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in its own session; kill that session however it ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sphinxext.isolated_doctest", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def groups(outdir: Path) -> dict[str, str]:
    data = json.loads((outdir / "output.json").read_text())
    return {f"{g['document']}/{g['group']}": g["status"] for g in data["groups"]}


def test_all_groups_and_exit_status_1(project: Path) -> None:
    done = cli(project)
    assert done.returncode == 1, done.stderr
    assert groups(project / "_build/doctest") == {
        "failing/wrong": "failed",
        "faults/hangs": "error",
        "faults/crashes": "error",
        "passing/first": "passed",
        "passing/second": "passed",
    }
    lines = done.stdout.splitlines()
    # Each failing group's report, as in output.txt (whose page order is a
    # set's under Sphinx 7), then the summary.
    assert lines[0] == "*" * 70
    for header in ('File "failing.rst", line 5, in wrong', 'File "faults.rst", line 6, in hangs',
                   'File "faults.rst", line 13, in crashes'):
        assert lines[lines.index(header) - 1] == "*" * 70
    assert lines[-7:-1] == [
        "Doctest summary",
        "===============",
        "   11 tests",
        "    3 failures in tests",
        "    0 failures in setup code",
        "    0 failures in cleanup code",
    ]
    assert lines[-1].startswith("5 groups (0 from the cache) in ")
    assert done.stderr == ""  # no progress bar where stderr is not a terminal


def test_only_pages_and_groups(project: Path) -> None:
    done = cli(project, "docs", "out", "--only", "passing", "--only", "failing/skipped",
               "--progress")
    assert done.returncode == 0, done.stderr
    assert groups(project / "out") == {"passing/first": "passed", "passing/second": "passed"}
    # (The bar's carriage returns are newlines here, in a pipe read as text.)
    assert "\x1b[2Ktesting [##########--------------------] 1/3 groups\n" in done.stderr
    assert "\x1b[2Ktesting [##############################] 3/3 groups\n" in done.stderr
    done = cli(project, "docs", "out", "--only", "docs/failing.rst")
    assert done.returncode == 1
    assert groups(project / "out") == {"failing/wrong": "failed"}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nowhere"], "SOURCEDIR nowhere: no such folder"),
        (["docs", "out", "-c", "."], "--conf-dir .: there is no conf.py in it"),
        (["--only", "nope"], "--only nope: no such page in {docs} (give a document name such as "
         "'guide/intro', or 'guide/intro/GROUP' for one group)"),
        (["--only", "passing/nope"], "--only: page 'passing' has no doctest group 'nope' "
         "(its groups: first, second)"),
        (["--only", "passing", "--changed"], "give --only or --changed, not both"),
        (["-D", "nothing"], "-D nothing: give a setting and its value, as -D name=value"),
    ],
)
def test_usage_errors_exit_2(project: Path, args: list[str], error: str) -> None:
    done = cli(project, *args)
    assert done.returncode == 2
    assert done.stderr.startswith(USAGE)
    assert done.stderr.endswith(f"{PROG}: error: {error.format(docs=project / 'docs')}\n")
    assert not (project / "_build/doctest/output.json").exists()  # nothing ran


def test_no_conf_py(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    done = cli(tmp_path)
    assert done.returncode == 2
    assert done.stderr.endswith(
        f"{PROG}: error: no conf.py in {tmp_path / 'docs'} nor in the current folder: "
        "give its folder with -c DIR\n"
    )


def test_changed_pages_only(project: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)

    done = cli(project, "--changed")
    assert done.returncode == 2
    assert "--changed needs a git checkout with a commit" in done.stderr
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "docs")
    done = cli(project, "--changed")
    assert (done.returncode, done.stdout) == (
        0, f"no page of {project / 'docs'} differs from git's HEAD: nothing to test\n"
    )
    page = project / "docs/passing.rst"
    page.write_text(page.read_text().replace("print(\"two\")", "print('two')"))
    done = cli(project, "--changed")
    assert done.returncode == 0, done.stderr
    assert groups(project / "_build/doctest") == {
        "passing/first": "passed", "passing/second": "passed",
    }

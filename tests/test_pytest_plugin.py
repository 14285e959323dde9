"""The pytest plugin: a Sphinx project's doctest groups as pytest items.

Every run is a pytest subprocess (``runpytest_subprocess``): the groups run in
children of that process, which the plugin must end however the run ends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from defusedxml import ElementTree
from isolated_helpers import ROOTS, as_doctest_311, sphinx_build

if TYPE_CHECKING:
    from _pytest.pytester import Pytester, RunResult

ROOT = ROOTS / "test-pytest-plugin"
ALL_GROUPS = [
    "docs/failing.rst::wrong",
    "docs/failing.rst::skipped",
    "docs/faults.rst::hangs",
    "docs/faults.rst::crashes",
    "docs/passing.rst::first",
    "docs/passing.rst::second",
]
WRONG_TEXT = [
    "**********************************************************************",
    'File "failing.rst", line 5, in wrong',
    "Failed example:",
    "    6 * 7",
    "Expected:",
    "    41",
    "Got:",
    "    42",
    "**********************************************************************",
    "1 items had failures:",
    "   1 of   2 in wrong",
    "2 tests in 1 items.",
    "1 passed and 1 failed.",
    "***Test Failed*** 1 failures.",
    "docs/failing.rst:5: 1 of 2 tests failed, first in the example at line 7: expected 41, got 42",
]


@pytest.fixture
def project(pytester: Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test root in pytester's folder; each group that runs logs its name."""
    shutil.copytree(ROOT, pytester.path, dirs_exist_ok=True)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    log = pytester.path / "groups-ran.txt"
    monkeypatch.setenv("GROUPS_RAN", str(log))
    return log


def run(pytester: Pytester, *args: str) -> RunResult:
    return pytester.runpytest_subprocess(*args, timeout=120)


def ran(log: Path) -> list[str]:
    return sorted(log.read_text().split()) if log.exists() else []


def section(result: RunResult, title: str) -> list[str]:
    """The lines of one failure's report, header excluded (tallies as Python
    3.11 words them)."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.strip("_ ") == title)
    end = next(
        i for i in range(start + 1, len(lines))
        if lines[i].startswith(("____", "====", "----", "sphinx doctest:"))
    )
    return as_doctest_311("\n".join(lines[start + 1 : end])).split("\n")


def test_collects_one_item_per_group(pytester: Pytester, project: Path) -> None:
    result = run(pytester, "--sphinx-doctest=docs", "--collect-only", "-q")
    assert result.stdout.lines[: len(ALL_GROUPS)] == ALL_GROUPS
    result.stdout.fnmatch_lines(["6 tests collected in *"])
    assert result.ret == 0
    assert ran(project) == []  # collecting runs nothing


def test_pass_fail_skip_timeout_crash(pytester: Pytester, project: Path) -> None:
    result = run(pytester, "--sphinx-doctest=docs", "-rsf")
    result.assert_outcomes(passed=2, failed=3, skipped=1)
    assert result.ret == 1
    assert section(result, "[sphinx doctest] wrong") == WRONG_TEXT
    assert section(result, "[sphinx doctest] hangs") == [
        "**********************************************************************",
        'File "faults.rst", line 6, in hangs',
        "Failed example:",
        "    time.sleep(60)",
        "Timed out after 0.5 s in the example at line 9; the rest of group 'hangs' did not run.",
        "**********************************************************************",
        "1 items had failures:",
        "   1 of   3 in hangs",
        "3 tests in 1 items.",
        "2 passed and 1 failed.",
        "***Test Failed*** 1 failures.",
        "docs/faults.rst:6: timed out after 0.5 s in the example at line 9",
    ]
    crash = section(result, "[sphinx doctest] crashes")
    assert crash[:5] == [
        "**********************************************************************",
        'File "faults.rst", line 13, in crashes',
        "Failed example:",
        "    os.kill(os.getpid(), signal.SIGSEGV)",
        "Killed by SIGSEGV in the example at line 15; the rest of group 'crashes' did not run.",
    ]
    assert crash[-1] == "docs/faults.rst:13: killed by SIGSEGV in the example at line 15"
    result.stdout.fnmatch_lines([
        "sphinx doctest: 11 tests in 5 groups, 3 failed, 0 from the cache",
        "SKIPPED [1] docs/failing.rst:10: every block of group 'skipped' is skipped by its "
        ":skipif:",
        "FAILED docs/failing.rst::wrong - 1 of 2 tests failed, first in the example at*",
        "FAILED docs/faults.rst::hangs - timed out after 0.5 s in the example at line 9",
        "FAILED docs/faults.rst::crashes - killed by SIGSEGV in the example at line 15",
    ], consecutive=False)
    assert ran(project) == ["crashes", "first", "hangs", "second", "wrong"]


def test_failure_text_is_output_txt(pytester: Pytester, project: Path, tmp_path: Path) -> None:
    """What pytest shows of a failed group is what the builder writes to output.txt."""
    build = sphinx_build(pytester.path / "docs", tmp_path / "out")
    assert build.returncode == 1, build.stderr
    output = as_doctest_311((tmp_path / "out" / "output.txt").read_text())
    result = run(pytester, "--sphinx-doctest=docs", "-k", "wrong")
    text = "\n".join(section(result, "[sphinx doctest] wrong")[:-1]) + "\n"
    assert f"Document: failing\n-----------------\n{text}\n" in output


def test_select_with_k(pytester: Pytester, project: Path) -> None:
    result = run(pytester, "--sphinx-doctest=docs", "-k", "passing or wrong", "-v")
    result.assert_outcomes(passed=2, failed=1, deselected=3)
    assert ran(project) == ["first", "second", "wrong"]


def test_rerun_last_failed(pytester: Pytester, project: Path) -> None:
    run(pytester, "--sphinx-doctest=docs", "-k", "not faults").assert_outcomes(
        passed=2, failed=1, skipped=1
    )
    project.unlink()
    (environment,) = pytester.path.glob(".pytest_cache/d/sphinx-doctest-*/doctrees/*.pickle")
    read_at = environment.stat().st_mtime_ns
    result = run(pytester, "--sphinx-doctest=docs", "--lf", "-k", "not faults")
    assert environment.stat().st_mtime_ns == read_at  # nothing changed, nothing read again
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure (skipped 2 files)"])
    # Nothing changed: the failure is reported from the cache, as the builder does.
    result.stdout.fnmatch_lines(["sphinx doctest: 2 tests in 1 groups, 1 failed, 1 from the cache"])
    assert ran(project) == []


def test_stop_at_first_failure(pytester: Pytester, project: Path) -> None:
    result = run(pytester, "--sphinx-doctest=docs", "-x", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_junit_xml(pytester: Pytester, project: Path) -> None:
    run(pytester, "--sphinx-doctest=docs", "--junitxml=junit.xml", "-k", "passing or failing")
    suite = ElementTree.parse(pytester.path / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "4", "failures": "1", "errors": "0", "skipped": "1",
    }
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert {name: case.get("classname") for name, case in cases.items()} == {
        "wrong": "docs.failing.rst",
        "skipped": "docs.failing.rst",
        "first": "docs.passing.rst",
        "second": "docs.passing.rst",
    }
    failure = cases["wrong"].find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "1 of 2 tests failed, first in the example at line 7: expected 41, got 42"
    )
    assert failure.text is not None
    assert as_doctest_311(failure.text).splitlines() == WRONG_TEXT
    properties = {p.get("name"): p.get("value") for p in cases["first"].iter("property")}
    assert properties == {"doctest_tests": "2"}


def test_xdist_runs_each_group_once(pytester: Pytester, project: Path) -> None:
    result = run(pytester, "--sphinx-doctest=docs", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=3, skipped=1)
    result.stdout.fnmatch_lines(
        ["sphinx doctest: 11 tests in 5 groups, 3 failed, 0 from the cache"]
    )
    assert ran(project) == ["crashes", "first", "hangs", "second", "wrong"]


def test_doctest_glob_left_alone(pytester: Pytester, project: Path) -> None:
    result = run(
        pytester, "--sphinx-doctest=docs", "--doctest-glob=*.txt", "--collect-only", "-q"
    )
    assert "docs/notes.txt::notes.txt" in result.stdout.lines
    assert set(ALL_GROUPS) <= set(result.stdout.lines)
    result = run(pytester, "--doctest-glob=*.txt", "-v")
    result.assert_outcomes(passed=1)


def test_idle_unless_asked(pytester: Pytester, project: Path) -> None:
    result = run(pytester)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "sphinx doctest" not in result.stdout.str()
    # Loading the plugin imports nothing of Sphinx.
    check = subprocess.run(
        [sys.executable, "-c",
         "import sys, sphinxext.isolated_doctest.pytest; print('sphinx' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert check.stdout == "False\n"


def test_enabled_by_name_without_autoload(
    pytester: Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    args = ("--sphinx-doctest=docs", "-k", "passing")
    assert run(pytester, *args).ret == pytest.ExitCode.USAGE_ERROR  # no such option
    result = run(pytester, "-p", "sphinxext.isolated_doctest.pytest", *args)
    result.assert_outcomes(passed=2, deselected=4)


def test_bad_source_folder(pytester: Pytester, project: Path) -> None:
    result = run(pytester, "--sphinx-doctest=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line] == [
        f"ERROR: --sphinx-doctest={pytester.path / 'nowhere'}: no such folder; give the "
        "Sphinx source folder (the one with index.rst)",
    ]
    result = run(pytester, "--sphinx-doctest=.")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line] == [
        f"ERROR: {pytester.path / 'conf.py'}: no such file; if conf.py is elsewhere, give its "
        "folder with --sphinx-doctest-confdir",
    ]


def test_bad_setting_is_a_usage_error(pytester: Pytester, project: Path) -> None:
    conf = pytester.path / "docs/conf.py"
    conf.write_text(conf.read_text() + "isolated_doctest_timeout = -1\n")
    result = run(pytester, "--sphinx-doctest=docs")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line] == [
        f"ERROR: --sphinx-doctest: {conf}:13: ERROR: isolated_doctest_timeout = -1: use a "
        "number of seconds, or 0 for none; this build runs with the default, 120, and fails "
        "[isolated_doctest.config]",
    ]


def test_sphinx_warnings_are_pytest_warnings(pytester: Pytester, project: Path) -> None:
    page = pytester.path / "docs/passing.rst"
    third = "\n.. doctest:: third\n   :timeout: soon\n\n   >>> 3\n   3\n"
    page.write_text(page.read_text() + third)
    message = (
        f'{page}:19: ERROR: Error in "doctest" directive:\n'
        "invalid option value: (option: \"timeout\"; value: 'soon')\n"
        "'soon' is not a number of seconds (use e.g. 30, or 0 for none)."
    )
    # The ini file makes warnings errors: this one stops the run, and says why.
    result = run(pytester, "--sphinx-doctest=docs", "-k", "passing")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "\n".join(line for line in result.stderr.lines if line).startswith(
        f"ERROR: {message}"
    )
    result = run(pytester, "--sphinx-doctest=docs", "-k", "passing", "-W",
                 "default::sphinxext.isolated_doctest.pytest.SphinxWarning")
    result.assert_outcomes(passed=2, deselected=4, warnings=1)
    result.stdout.fnmatch_lines([
        "docs/passing.rst:19",
        f'  {page}:19: SphinxWarning: ERROR: Error in "doctest" directive:',
        *(f"  {line}" for line in message.splitlines()[1:]),
    ])


def test_our_docs_same_groups_as_the_builder(tmp_path: Path) -> None:
    """This project's documentation: every group the builder runs is an item,
    and the tests add up to the builder's."""
    repo = Path(__file__).parent.parent
    build = sphinx_build(repo / "docs", tmp_path / "doctest", "-c", str(repo))
    assert build.returncode == 0, build.stderr
    summary = json.loads((tmp_path / "doctest/output.json").read_text())["summary"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--sphinx-doctest=docs", "--sphinx-doctest-confdir=.",
         f"--sphinx-doctest-builddir={tmp_path / 'pytest'}", "-p", "no:cacheprovider", "docs"],
        cwd=repo, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout
    assert (
        f"sphinx doctest: {summary['tests']} tests in {summary['groups']} groups, 0 failed, "
        "0 from the cache"
    ) in done.stdout.splitlines()
    assert f"{summary['groups']} passed" in done.stdout.splitlines()[-1]

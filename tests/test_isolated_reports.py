"""The result cache, output.json, junit.xml and the console's slowest groups."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import pytest
from isolated_helpers import console_status, output_body, output_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp






FAILURE_B = (
    "**********************************************************************\n"
    'File "index.rst", line 11, in b\n'
    "Failed example:\n"
    "    'b'\n"
    "Expected:\n"
    "    'not b'\n"
    "Got:\n"
    "    'b'\n"
)

#: Its short cause: our line for the example, not the report's.
MESSAGE_B = "1 of 2 tests failed, first in the example at line 13: expected 'not b', got 'b'"


# A srcdir of its own, since the test edits index.rst: Sphinx 7.x copies a test
# root once per session, so the edit would reach later tests of the same root.
@pytest.mark.sphinx(
    "doctest", testroot="isolated-cache", srcdir="isolated-cache-edited", freshenv=True
)
def test_cache_reruns_only_what_changed(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each group of the root appends its name to a file when it runs: that file
    tells which groups a build ran and which it took from the cache."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("ISOLATED_DOCTEST_RUNS", str(runs))
    args, kwargs = app_params

    def build(**overrides: Any) -> tuple[SphinxTestApp, list[str]]:
        runs.write_text("")
        app = make_app(*args, **{**kwargs, **overrides})
        try:
            app.build()
        finally:
            app.cleanup()
        return app, sorted(runs.read_text().split())

    first, ran = build()
    assert ran == ["a", "b", "c"]
    assert first.statuscode == 1
    assert "reported from the cache" not in console_status(first)
    assert FAILURE_B in output_body(first)

    second, ran = build(freshenv=False)
    assert ran == []
    assert output_body(second) == output_body(first)
    assert second.statuscode == 1
    assert "3 of 3 groups reported from the cache" in console_status(second).splitlines()
    data = output_json(second)
    assert data["summary"]["cached"] == 3
    assert [(g["group"], g["cached"], g["status"]) for g in data["groups"]] == [
        ("a", True, "passed"),
        ("b", True, "failed"),
        ("c", True, "passed"),
    ]

    # Fix group b only: only b runs again.
    index = second.srcdir / "index.rst"
    index.write_text(index.read_text().replace("'not b'", "'b'"))
    later = time.time() + 10
    os.utime(index, (later, later))
    third, ran = build(freshenv=False)
    assert ran == ["b"]
    assert "2 of 3 groups reported from the cache" in console_status(third).splitlines()
    assert third.statuscode == 0
    assert "6 passed and 0 failed." in output_body(third)

    # A fresh environment (-E), or the cache turned off, runs everything.
    _, ran = build(freshenv=True)
    assert ran == ["a", "b", "c"]
    off, ran = build(freshenv=False, confoverrides={"isolated_doctest_cache": False})
    assert ran == ["a", "b", "c"]
    assert "reported from the cache" not in console_status(off)


@pytest.mark.sphinx(
    "doctest",
    testroot="isolated-cache",
    freshenv=True,
    confoverrides={"isolated_doctest_cache": False},
)
def test_json_junit_and_slowest_groups(
    app: SphinxTestApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISOLATED_DOCTEST_RUNS", str(tmp_path / "runs"))
    app.build()
    assert app.statuscode == 1

    data = output_json(app)
    summary = data["summary"]
    assert {k: v for k, v in summary.items() if k != "seconds"} == {
        "tests": 6,
        "failures": 1,
        "setup_failures": 0,
        "cleanup_failures": 0,
        "groups": 3,
        "cached": 0,
    }
    groups = data["groups"]
    for group in groups:
        assert group["seconds"] >= 0
        del group["seconds"]
    assert groups == [
        {
            "document": "index",
            "file": "index.rst",
            "line": 4,
            "group": "a",
            "status": "passed",
            "cached": False,
            "tests": 2,
            "failures": 0,
            "setup_failures": 0,
            "cleanup_failures": 0,
            "message": "",
            "report": "",
        },
        {
            "document": "index",
            "file": "index.rst",
            "line": 10,
            "group": "b",
            "status": "failed",
            "cached": False,
            "tests": 2,
            "failures": 1,
            "setup_failures": 0,
            "cleanup_failures": 0,
            "message": MESSAGE_B,
            "report": FAILURE_B,
        },
        {
            "document": "index",
            "file": "index.rst",
            "line": 16,
            "group": "c",
            "status": "passed",
            "cached": False,
            "tests": 2,
            "failures": 0,
            "setup_failures": 0,
            "cleanup_failures": 0,
            "message": "",
            "report": "",
        },
    ]
    # The per-group counts add up to the summary's, as output.txt's do.
    assert sum(g["tests"] for g in groups) == summary["tests"]

    suite = ElementTree.parse(app.outdir / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name"), c.get("line")) for c in cases] == [
        ("index", "a", "4"),
        ("index", "b", "10"),
        ("index", "c", "16"),
    ]
    assert [len(c) for c in cases] == [0, 1, 0]
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == MESSAGE_B
    assert failure.text == FAILURE_B

    status = console_status(app).splitlines()
    at = status.index("slowest groups:")
    slowest = status[at + 1 : at + 4]
    for line in slowest:
        assert re.fullmatch(r"\s+\d+\.\d{3} s  index\.rst: [abc] \(line (4|10|16)\)", line)
    assert sorted(line.split(": ")[1] for line in slowest) == [
        "a (line 4)",
        "b (line 10)",
        "c (line 16)",
    ]


def _output_txt_counts(body: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(page, item) -> (failures, tests) as output.txt's per-page tallies say."""
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    page = ""
    for line in body.splitlines():
        if line.startswith("Document: "):
            page = line.removeprefix("Document: ")
        elif m := re.fullmatch(r" +(\d+) of +(\d+) in (.+)", line):
            counts[page, m[3]] = (int(m[1]), int(m[2]))
        elif m := re.fullmatch(r" +(\d+) tests? in (.+)", line):
            counts[page, m[2]] = (0, int(m[1]))
    return counts


@pytest.mark.sphinx("doctest", testroot="isolated-counts", freshenv=True)
def test_json_and_junit_agree_with_output_txt(app: SphinxTestApp) -> None:
    """A group that passes, fails, fails in setup or cleanup, times out (after a
    skipped example), is skipped whole, or shares its name with another page's.
    Built with -a: Sphinx 7.x tests an update's pages in a set's order."""
    app.build(force_all=True)
    assert app.statuscode == 1
    data = output_json(app)
    summary, groups = data["summary"], data["groups"]
    # Python 3.13's doctest counts a skipped example as a test.
    hang_tests = 3 if sys.version_info >= (3, 13) else 2
    assert [
        (g["document"], g["group"], g["status"], g["tests"], g["failures"],
         g["setup_failures"], g["cleanup_failures"], g["message"])
        for g in groups
    ] == [
        ("index", "passes", "passed", 2, 0, 0, 0, ""),
        ("index", "fails", "failed", 3, 2, 0, 0,
         "2 of 3 tests failed, first in the example at line 17: expected 3, got 2"),
        ("index", "setup-fails", "failed", 0, 0, 1, 0,
         "its setup code failed in the example at line 26: raised RuntimeError: no setup"),
        ("index", "cleanup-fails", "failed", 1, 0, 0, 1,
         "its cleanup code failed in the example at line 35: "
         "raised NameError: name 'undefined_name' is not defined"),
        ("index", "hangs", "error", hang_tests, 1, 0, 0,
         "timed out after 1 s in the example at line 49"),
        ("other", "fails", "failed", 1, 1, 0, 0,
         "1 of 1 tests failed, first in the example at line 6: expected b, got a"),
    ]
    # Every count of output.txt, per page and item, and in its summary.
    tallies = _output_txt_counts(output_body(app))
    for g in groups:
        page, name = g["document"], g["group"]
        # A group whose setup failed has no tests: output.txt does not list it.
        assert tallies.get((page, name), (0, 0)) == (g["failures"], g["tests"])
        if g["setup_failures"]:
            assert tallies[page, f"{name} (setup code)"][0] == g["setup_failures"]
        if g["cleanup_failures"]:
            assert tallies[page, f"{name} (cleanup code)"][0] == g["cleanup_failures"]
    for key in ("tests", "failures", "setup_failures", "cleanup_failures"):
        assert summary[key] == sum(g[key] for g in groups)
    assert output_body(app).endswith(
        f"   {summary['tests']:2} tests\n"
        f"    {summary['failures']} failures in tests\n"
        f"    {summary['setup_failures']} failure in setup code\n"
        f"    {summary['cleanup_failures']} failure in cleanup code\n"
    )
    assert summary["groups"] == len(groups) == 6

    suite = ElementTree.parse(app.outdir / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "4", "1")
    for case, g in zip(suite.findall("testcase"), groups, strict=True):
        detail = case.find("failure") if g["status"] == "failed" else case.find("error")
        if g["status"] == "passed":
            assert len(case) == 0
        else:
            assert detail is not None
            assert detail.get("message") == g["message"]
            assert detail.text == g["report"]

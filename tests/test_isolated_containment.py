"""Containment: nothing a group starts outlives it, and nothing the build starts
outlives the build, however either ends (checked in the process table, by pid)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from isolated_helpers import ROOTS, app_with_start, output_body, output_json, running
from process_tree import start_watched
from stress_containment import run, scratch_left
from test_isolated_parallel import most_at_once

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process checks read /proc"
)

DIVIDER = "*" * 70


def _recorded(folder: Path) -> dict[str, int]:
    """The pids the examples wrote down, by file name."""
    return {p.name: int(p.read_text()) for p in folder.iterdir() if p.suffix != ".tmp"}


def _kill_all(pids: Any) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-escapes", freshenv=True)
def test_what_leaves_its_group_still_ends_with_it(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: str,
) -> None:
    """A process started with setsid, in a process group of its own, or as a
    double-forked daemon, by a group that ends, times out or exits; and a
    group's own process that leaves its session and hangs: none is running
    once the build has reported."""
    monkeypatch.setenv("ISOLATED_DOCTEST_PIDS", str(tmp_path))
    app = app_with_start(make_app, app_params, start)
    pids: dict[str, int] = {}
    try:
        app.build()
        pids = _recorded(tmp_path)
        assert sorted(pids) == [
            "double-fork", "double-fork.daemon", "exits", "exits.daemon", "own-session",
            "process-group", "setsid", "times-out",
        ]
        # Ended and reaped before their groups were reported: no grace needed.
        assert {name: pid for name, pid in pids.items() if running(pid)} == {}
        body = output_body(app)
        assert "Timed out after 2 s in the example at line 51; the rest of group " \
            "'times-out' did not run.\n" in body
        assert "Exited with status 3 in the example at line 56; the rest of group " \
            "'exits' did not run.\n" in body
        assert "Timed out after 2 s in the example at line 67; the rest of group " \
            "'own-session' did not run.\n" in body
        # (doctest's own summary lines differ from one Python to the next)
        statuses = {g["group"]: g["status"] for g in output_json(app)["groups"]}
        assert statuses == {
            "setsid": "passed", "process-group": "passed", "double-fork": "passed",
            "times-out": "error", "exits": "error", "own-session": "error",
        }
    finally:
        _kill_all(pids.values())


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-fork-child", freshenv=True)
def test_a_forked_child_that_goes_on_reports_nothing(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    start: str,
) -> None:
    """An example forks and its child, not exiting, goes on through the rest of
    the examples: only the group's own process reports them."""
    app = app_with_start(make_app, app_params, start)
    app.build()
    # (doctest's own summary lines differ from one Python to the next)
    groups = output_json(app)["groups"]
    assert [(g["group"], g["status"], g["tests"]) for g in groups] == [
        ("faulty", "passed", 4), ("after", "passed", 1)
    ]
    assert output_body(app).endswith(
        "\nDoctest summary\n===============\n    5 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 0


@pytest.mark.sphinx("doctest", testroot="isolated-server-death", freshenv=True)
def test_a_server_death_leaves_jobs_as_it_was(
    app: SphinxTestApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``isolated_doctest_jobs = 1``, a group kills its fork server: the
    groups after it run in the next one, one at a time as before."""
    monkeypatch.setenv("ISOLATED_DOCTEST_TIMES", str(tmp_path))
    app.build()
    groups = {g["group"]: g["status"] for g in output_json(app)["groups"]}
    assert groups == {"killer": "error", "a": "passed", "b": "passed", "c": "passed",
                      "d": "passed"}
    assert most_at_once(tmp_path) == 1


@pytest.mark.sphinx("doctest", testroot="isolated-server-deaths", freshenv=True)
def test_servers_are_replaced_as_often_as_they_die(
    app: SphinxTestApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``isolated_doctest_jobs = 1``, two groups in turn kill the fork
    server they run in: each fails alone, every other group runs in the next
    server, and never two groups at once."""
    monkeypatch.setenv("ISOLATED_DOCTEST_TIMES", str(tmp_path))
    app.build()
    body = output_body(app)
    for killer in ("first-killer", "second-killer"):
        line = 18 if killer == "first-killer" else 30
        assert (
            f'File "index.rst", line {line}, in {killer}\n'
            "Failed example:\n"
            "    os.kill(os.getppid(), signal.SIGKILL); time.sleep(30)\n"
            f"Lost its fork server (exit status -9) in the example at line {line + 2}; "
            f"the rest of group '{killer}' did not run.\n"
        ) in body
    groups = {g["group"]: g["status"] for g in output_json(app)["groups"]}
    assert groups == {
        "first-killer": "error", "a": "passed", "b": "passed", "second-killer": "error",
        "c": "passed", "d": "passed", "e": "passed",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "d", "e"]
    assert most_at_once(tmp_path) == 1


#: Signals sent to sphinx-build, with the pause before each: a double Ctrl-C
#: (to the process group, as a terminal sends it), what ``timeout`` and
#: ``docker stop`` send, and what no process can catch.
KILLS = {
    "double-sigint": [(0.0, signal.SIGINT, True), (0.001, signal.SIGINT, True)],
    "sigterm": [(0.0, signal.SIGTERM, False)],
    "sigkill": [(0.0, signal.SIGKILL, False)],
}


@pytest.mark.parametrize("kill", list(KILLS))
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_nothing_outlives_a_killed_build(tmp_path: Path, start: str, kill: str) -> None:
    """sphinx-build is interrupted, terminated or killed while three groups hang,
    each with processes that left its session: once it is gone, nothing it
    started is running, and its scratch folder is gone."""
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-kills", srcdir)
    argv = [
        sys.executable, "-m", "sphinx", "-b", "doctest", "-E", "-q",
        "-D", "isolated_doctest_jobs=3", "-D", f"isolated_doctest_start={start}",
        str(srcdir), str(tmp_path / "out"),
    ]
    env = {**os.environ, "ISOLATED_DOCTEST_PIDS": str(pids_dir)}
    watched = start_watched(argv, tmp_path / "report.json", env=env)
    try:
        deadline = time.monotonic() + 60
        while len(_recorded(pids_dir)) < 9:
            assert watched.proc.poll() is None, "the build ended before its groups started"
            assert time.monotonic() < deadline, "the groups did not start"
            time.sleep(0.02)
        assert all(map(running, _recorded(pids_dir).values()))
        for pause, number, group in KILLS[kill]:
            time.sleep(pause)
            watched.signal(number, group=group)
        report = watched.finish()
    finally:
        watched.kill()
    assert report["left"] == [], report
    assert report["seconds"] < 5, report
    assert scratch_left(watched.pid) == []
    expected = {"double-sigint": 2, "sigterm": -signal.SIGTERM, "sigkill": -signal.SIGKILL}
    assert report["status"] == expected[kill], report["output"]


def test_a_short_stress_run_leaves_nothing(tmp_path: Path) -> None:
    """The stress run (tests/stress_containment.py), short: 30 groups, one in
    ten faulty, each start method to its end and killed at a random moment by
    SIGTERM, a double SIGINT and SIGKILL; nothing is left after any build."""
    outcomes = run(rounds=1, groups=30, jobs=2, work=tmp_path, log=lambda line: None)
    assert len(outcomes) == 8
    assert [(o.start, o.kill, o.problems) for o in outcomes if o.problems] == []

"""Faults: a group that hangs, crashes, exits or floods is that group's failure only."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import pytest
from isolated_helpers import (
    ROOTS,
    app_with_start,
    as_doctest_311,
    output_body,
    output_json,
    sphinx_build,
    wait_gone,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

DIVIDER = "*" * 70

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process checks read /proc"
)




@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-faults", freshenv=True)
def test_each_fault_is_its_groups_failure(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    start: str,
) -> None:
    """A timeout (option and config), SIGSEGV, os._exit, KeyboardInterrupt: every other
    group still runs and output.txt ends with its summary.  The "File" lines are
    those the reference would print; our own sentence names the example's line."""
    app = app_with_start(make_app, app_params, start, isolated_doctest_timeout=2)
    app.build()
    assert output_body(app) == (
        "\nDocument: index\n"
        "---------------\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 10, in hang\n'
        "Failed example:\n"
        "    time.sleep(60)\n"
        "Timed out after 1 s in the example at line 13; the rest of group 'hang' did not run.\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 16, in segfault\n'
        "Failed example:\n"
        "    ctypes.string_at(0)\n"
        "Killed by SIGSEGV in the example at line 18; "
        "the rest of group 'segfault' did not run.\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 22, in exit\n'
        "Failed example:\n"
        "    os._exit(3)\n"
        "Exited with status 3 in the example at line 24; the rest of group 'exit' did not run.\n"
        "Last lines written to stderr:\n"
        "    leaving now\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 26, in interrupt\n'
        "Failed example:\n"
        "    raise KeyboardInterrupt\n"
        "Raised KeyboardInterrupt in the example at line 28; "
        "the rest of group 'interrupt' did not run.\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 38, in cleanup-hang (cleanup code)\n'
        "Failed example:\n"
        "    import time\n"
        "    time.sleep(60)\n"
        "Timed out after 2 s in the example at line 40; "
        "the rest of group 'cleanup-hang' did not run.\n"
        "3 items passed all tests:\n"
        "   1 tests in after\n"
        "   1 tests in before\n"
        "   1 tests in cleanup-hang\n"
        f"{DIVIDER}\n"
        "4 items had failures:\n"
        "   1 of   3 in exit\n"
        "   1 of   2 in hang\n"
        "   1 of   1 in interrupt\n"
        "   1 of   2 in segfault\n"
        "11 tests in 7 items.\n"
        "7 passed and 4 failed.\n"
        "***Test Failed*** 4 failures.\n"
        f"{DIVIDER}\n"
        "1 items had failures:\n"
        "   1 of   1 in cleanup-hang (cleanup code)\n"
        "1 tests in 1 items.\n"
        "0 passed and 1 failed.\n"
        "***Test Failed*** 1 failures.\n"
        "\nDoctest summary\n===============\n   11 tests\n    4 failures in tests\n"
        "    0 failures in setup code\n    1 failure in cleanup code\n"
    )
    assert app.statuscode == 1
    # junit.xml: one case per group, each fault an error with what happened.
    suite = ElementTree.parse(app.outdir / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("7", "0", "5")
    errors = {
        case.get("name"): error.get("message")
        for case in suite.findall("testcase")
        if (error := case.find("error")) is not None
    }
    assert errors == {
        "hang": "timed out after 1 s in the example at line 13",
        "segfault": "killed by SIGSEGV in the example at line 18",
        "exit": "exited with status 3 in the example at line 24",
        "interrupt": "raised KeyboardInterrupt in the example at line 28",
        "cleanup-hang": "timed out after 2 s in the example at line 40",
    }


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-late-fault", freshenv=True)
def test_death_after_the_last_example_is_a_cleanup_failure(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list, dict], start: str
) -> None:
    """A group whose examples all passed, and whose process then died: its
    tests pass, the death fails its cleanup, and it is still one group."""
    app = app_with_start(make_app, app_params, start)
    app.build()
    assert output_body(app) == (
        "\nDocument: index\n"
        "---------------\n"
        f"{DIVIDER}\n"
        'File "index.rst", line ?, in leaver (cleanup code)\n'
        "Killed by SIGSEGV after its last example, as its process ended.\n"
        "1 items passed all tests:\n"
        "   3 tests in leaver\n"
        "3 tests in 1 items.\n"
        "3 passed and 0 failed.\n"
        "Test passed.\n"
        f"{DIVIDER}\n"
        "1 items had failures:\n"
        "   1 of   1 in leaver (cleanup code)\n"
        "1 tests in 1 items.\n"
        "0 passed and 1 failed.\n"
        "***Test Failed*** 1 failures.\n"
        "\nDoctest summary\n===============\n    3 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    1 failure in cleanup code\n"
    )
    assert app.statuscode == 1
    groups = output_json(app)["groups"]
    assert [(g["group"], g["status"], g["tests"], g["message"]) for g in groups] == [
        ("leaver", "error", 3, "killed by SIGSEGV after its last example, as its process ended")
    ]


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-closed-fds", freshenv=True)
def test_an_example_that_closes_every_descriptor(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list, dict], start: str
) -> None:
    """Closing the results' descriptor, then opening files (which must not get
    it back and be written to), is reported in that example, not as a
    traceback of the runner."""
    app = app_with_start(make_app, app_params, start)
    app.build()
    assert output_body(app) == (
        "\nDocument: index\n"
        "---------------\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 8, in daemon\n'
        "Failed example:\n"
        "    os.closerange(3, 65536); sys.kept = [tempfile.TemporaryFile() for _ in range(20)]\n"
        "Closed the file descriptor of the group's results in the example at line 10; "
        "the rest of group 'daemon' did not run.\n"
        "1 items passed all tests:\n"
        "   1 tests in after\n"
        f"{DIVIDER}\n"
        "1 items had failures:\n"
        "   1 of   2 in daemon\n"
        "3 tests in 2 items.\n"
        "2 passed and 1 failed.\n"
        "***Test Failed*** 1 failures.\n"
        "\nDoctest summary\n===============\n    3 tests\n    1 failure in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 1
    groups = output_json(app)["groups"]
    assert [(g["group"], g["status"], g["message"]) for g in groups] == [
        ("daemon", "error",
         "closed the file descriptor of the group's results in the example at line 10"),
        ("after", "passed", ""),
    ]


#: The flood root's group that writes 80 MiB to fd 1, as output.txt reports
#: it, and the passing groups after it.
FD_FLOOD_REPORT = (
    'File "index.rst", line 10, in fd-flood\n'
    "Failed example:\n"
    "    for _ in range(80): _ = os.write(1, b'x' * 2**20)\n"
    "Flooded its output (more than 64 MiB written to stdout, stderr or a file) and was "
    "stopped in the example at line 12; the rest of group 'fd-flood' did not run.\n"
    "2 items passed all tests:\n"
    "   1 tests in after\n"
    "   4 tests in not-utf8\n"
)


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-flood", freshenv=True)
def test_floods_are_cut_and_bad_bytes_break_nothing(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    start: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = app_with_start(make_app, app_params, start)
    app.build()
    output = app.outdir / "output.txt"
    assert output.stat().st_size < 2**20  # a 60 MB "Got:" is cut, not copied
    body = output_body(app)
    lines = body.splitlines()
    at = lines.index('File "index.rst", line 4, in big-print')
    assert lines[at + 1 : at + 5] == [
        "Failed example:",
        "    print('x' * 60_000_000)",
        "Expected:",
        "    something else",
    ]
    assert lines[at + 5] == "Got:"
    assert lines[at + 7].startswith("[... ") and lines[at + 7].endswith(" characters cut ...]")
    assert f"{DIVIDER}\n{FD_FLOOD_REPORT}" in body
    assert body.endswith(
        "\nDoctest summary\n===============\n    8 tests\n    2 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 1
    # What not-utf8 wrote to fds 1 and 2 reaches sphinx-build's, escaped; of a
    # flood, its first MiB.
    out, err = capsys.readouterr()
    assert err.splitlines() == ["stderr of index.rst, group 'not-utf8':", "err \\xc3( bytes"]
    out_lines = out.splitlines()
    at = out_lines.index("stdout of index.rst, group 'fd-flood':")
    assert out_lines[at + 1] == "x" * 2**20
    assert re.fullmatch(r"\[\.\.\. \d+ more bytes not shown \.\.\.\]", out_lines[at + 2])
    assert out_lines[at + 3 :] == ["stdout of index.rst, group 'not-utf8':",
                                   "out \\xff\\xfe\\x80 bytes"]


SMALL_SHM = ["unshare", "--mount", "sh", "-c",
             'mount -t tmpfs -o size=64m tmpfs /dev/shm && exec "$@"', "sh"]


def _why_no_small_shm() -> str | None:
    """Why this machine cannot give a build a 64 MiB /dev/shm of its own, if it cannot."""
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = subprocess.run([*SMALL_SHM, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot mount a private /dev/shm (needs root): {probe.stderr.strip()}"
    return None


def test_a_small_dev_shm_loses_nothing(tmp_path: Path) -> None:
    """A container's /dev/shm is often 64 MiB: a group that floods its output is
    still a flood there, not a full disk for every group running beside it."""
    reason = _why_no_small_shm()
    if reason:
        pytest.skip(reason)
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-flood", srcdir)
    build = sphinx_build(srcdir, tmp_path / "out", wrapper=SMALL_SHM)
    assert build.returncode == 1, build.stderr
    body = as_doctest_311((tmp_path / "out" / "output.txt").read_text(encoding="utf-8"))
    assert "No space left on device" not in body
    assert FD_FLOOD_REPORT in body


@pytest.mark.sphinx("doctest", testroot="isolated-mongo-hang", freshenv=True)
def test_hanging_join_under_gevent_times_out(app: SphinxTestApp) -> None:
    """The hang that started it all: joining the hub while a MongoClient's monitors run."""
    app.build()
    body = output_body(app)
    assert (
        f"{DIVIDER}\n"
        'File "index.rst", line 7, in default\n'
        "Failed example:\n"
        "    gevent.get_hub().join()\n"
        "Timed out after 3 s in the example at line 11; the rest of group 'default' did not run.\n"
        "1 items passed all tests:\n"
        "   1 tests in after\n"
    ) in body
    assert body.endswith(
        "\nDoctest summary\n===============\n    5 tests\n    1 failure in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 1


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-orphans", freshenv=True)
def test_no_process_outlives_its_group(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: str,
) -> None:
    """Processes an example started die with its group: after a normal end, a timeout
    and an exit."""
    monkeypatch.setenv("ISOLATED_DOCTEST_PIDS", str(tmp_path))
    app = app_with_start(make_app, app_params, start)
    pids = []
    try:
        app.build()
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["crashes", "ends-normally", "times-out"]
        pids = [int((tmp_path / name).read_text()) for name in names]
        assert wait_gone(pids) == []
        assert "Timed out after 1 s in the example at line 25" in output_body(app)
        assert "Exited with status 7 in the example at line 30" in output_body(app)
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.sphinx(
    "doctest",
    testroot="isolated-no-timeout",
    freshenv=True,
    confoverrides={"isolated_doctest_timeout": 1},
)
def test_timeout_option_zero_means_no_limit(app: SphinxTestApp) -> None:
    """``:timeout: 0`` lifts the one-second limit of conf.py for its group."""
    app.build()
    assert "3 passed and 0 failed." in output_body(app)
    assert app.statuscode == 0


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_ctrl_c_stops_every_child(tmp_path: Path, start: str) -> None:
    """SIGINT to sphinx-build, while three groups sleep: it exits at once, and so do they."""
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "doctest",
            "-E",
            "-q",
            "-D",
            "isolated_doctest_jobs=3",
            "-D",
            f"isolated_doctest_start={start}",
            str(ROOTS / "test-isolated-sleepers"),
            str(tmp_path / "out"),
        ],
        env={**os.environ, "ISOLATED_DOCTEST_PIDS": str(pids_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # As a terminal would deliver it, even if this process was started ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len([p for p in pids_dir.iterdir() if p.suffix != ".tmp"]) < 3:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the groups did not start"
            time.sleep(0.05)
        pids = [int(pid) for p in pids_dir.iterdir() for pid in p.read_text().split()]
        assert len(pids) == 6 and wait_gone(pids, 0) == pids

        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=10)
        assert time.monotonic() - interrupted < 5
        assert proc.returncode == 2, output
        assert "Interrupted!" in output.decode()
        assert wait_gone(pids) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("start", "lost"), [("fork", "its fork server"), ("spawn", "its parent process")]
)
@pytest.mark.sphinx("doctest", testroot="isolated-server-loss", freshenv=True)
def test_killing_its_parent_fails_one_group_only(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: str,
    lost: str,
) -> None:
    """A group that kills its parent process (with fork, the fork server; with
    spawn, never sphinx-build) fails; the group queued behind it runs, and the
    killer's process does not outlive the build."""
    monkeypatch.setenv("ISOLATED_DOCTEST_PIDS", str(tmp_path))
    app = app_with_start(make_app, app_params, start)
    app.build()
    body = output_body(app)
    assert (
        'File "index.rst", line 14, in killer\n'
        "Failed example:\n"
        "    os.kill(os.getppid(), signal.SIGKILL); time.sleep(30)\n"
        f"Lost {lost} (exit status -9) in the example at line 16; "
        "the rest of group 'killer' did not run.\n"
    ) in body
    assert "2 items passed all tests:\n   1 tests in after\n   1 tests in before\n" in body
    assert app.statuscode == 1
    assert wait_gone([int((tmp_path / "killer").read_text())]) == []

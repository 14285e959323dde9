"""What a build leaves running: run a command under a subreaper, list what outlives it.

Run as a script, ``python process_tree.py REPORT GRACE -- COMMAND...`` makes
itself a child subreaper (Linux's ``PR_SET_CHILD_SUBREAPER``), starts COMMAND
in a session of its own, its output to ``REPORT.out``, prints its pid, waits
for it to end, then gives what it started GRACE seconds to end too.  Every process that outlived
COMMAND, however it left COMMAND's process group or session (``setsid``, a
double fork), is re-parented to this process rather than to init, so that
the process table says exactly what is left: the descendants of this
process, found by parent pid.  REPORT gets them as JSON, with COMMAND's exit
status and how long the rest took to end; then they are killed, so that a
test leaves nothing behind either.

Imported, it gives the test side: :func:`start_watched` and :class:`Watched`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


def _table() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, state letter), from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            data = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        state, ppid = data[data.rfind(b")") + 2 :].split(b" ", 2)[:2]
        table[int(name)] = (int(ppid), state.decode())
    return table


def descendants(root: int) -> list[int]:
    """The live (not zombie) descendants of ``root``, by parent pid."""
    table = _table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            if table[child][1] not in {"Z", "X"}:
                found.append(child)
    return sorted(found)


def describe(pid: int) -> dict[str, Any]:
    """What the report says of a process: ids and command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return {"pid": pid, "cmdline": "?"}
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        wchan = "?"
    return {
        "pid": pid,
        "ppid": int(fields[1]),
        "pgid": int(fields[2]),
        "sid": int(fields[3]),
        "state": fields[0].decode(),
        "wchan": wchan,
        "cmdline": " ".join(a.decode(errors="replace") for a in argv if a),
    }


def _reap_any() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _main(report: str, grace: float, argv: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
    # As a terminal would deliver them, even if this process started ignoring them.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    with open(f"{report}.out", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    print(proc.pid, flush=True)
    status = proc.wait()
    ended = time.monotonic()
    deadline = ended + grace
    while True:
        _reap_any()
        left = descendants(os.getpid())
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    result = {
        "status": status,
        "left": [describe(pid) for pid in left],
        "seconds": time.monotonic() - ended,
    }
    Path(report).write_text(json.dumps(result), encoding="utf-8")
    while left:
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
        _reap_any()
        left = descendants(os.getpid())
    return 0


@dataclass
class Watched:
    """A command started under the subreaper: its pid, once known, and its report."""

    proc: subprocess.Popen[str]
    report: Path
    pid: int = 0

    def signal(self, number: int, *, group: bool = False) -> None:
        """Send ``number`` to the command (to its process group if ``group``)."""
        if group:
            os.killpg(self.pid, number)
        else:
            os.kill(self.pid, number)

    def finish(self, timeout: float = 120) -> dict[str, Any]:
        """Wait for the subreaper, and return its report (see the module's docstring),
        with the command's output under ``"output"``."""
        try:
            self.proc.communicate(timeout=timeout)
        finally:
            self.kill()
        result: dict[str, Any] = json.loads(self.report.read_text(encoding="utf-8"))
        result["output"] = Path(f"{self.report}.out").read_text(encoding="utf-8", errors="replace")
        return result

    def kill(self) -> None:
        """End everything, however the test went: the subreaper kills what is left."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self.pid:
                    os.kill(self.pid, signal.SIGKILL)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_watched(
    argv: list[str], report: Path, *, grace: float = 10, env: dict[str, str] | None = None
) -> Watched:
    """Start ``argv`` under the subreaper; return once its pid is known."""
    proc = subprocess.Popen(
        [sys.executable, __file__, str(report), str(grace), "--", *argv],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    watched = Watched(proc=proc, report=report)
    line = proc.stdout.readline()
    if not line.strip():
        watched.kill()
        raise RuntimeError("the subreaper did not start its command")
    watched.pid = int(line)
    return watched


if __name__ == "__main__":
    _report, _grace, _dash, *_argv = sys.argv[1:]
    assert _dash == "--", "usage: process_tree.py REPORT GRACE -- COMMAND..."
    sys.exit(_main(_report, float(_grace), _argv))

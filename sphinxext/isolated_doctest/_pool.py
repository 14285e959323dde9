"""Run jobs in child processes: start them, watch them, time them out, kill them.

One selector loop in the sphinx-build process watches every child's output
FIFOs, its exit (a pidfd, or the fork server's answer) and its deadline.  Nothing
here decides policy: each finished job becomes a :class:`JobResult`.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinxext.isolated_doctest._result import Fault, JobResult, describe_exit

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from sphinxext.isolated_doctest._job import Job, RunSettings

CHILD_SCRIPT = str(Path(__file__).with_name("_child.py"))

#: What a child may write to its stdout and stderr together before it is
#: stopped as a flood; only a head and a tail of it are kept.
OUTPUT_LIMIT = 16 * 1024 * 1024
#: Likewise for its report events (failure reports are already cut by the child).
EVENT_LIMIT = 64 * 1024 * 1024
TAIL_BYTES = 8 * 1024


def _scratch_dir() -> str | None:
    """Where job folders and FIFOs go: memory-backed where there is such a place,
    since each job creates and removes a few of them."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


class _Tail:
    """Counts a stream and keeps its last bytes."""

    __slots__ = ("data", "total")

    def __init__(self) -> None:
        self.data = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > 2 * TAIL_BYTES:
            del self.data[:-TAIL_BYTES]

    def text(self) -> str:
        data = bytes(self.data[-TAIL_BYTES:])
        text = data.decode("utf-8", errors="backslashreplace")
        if self.total > len(data):
            text = f"[... {self.total - len(data)} bytes before this ...]\n{text}"
        return text


@dataclass(kw_only=True, eq=False)
class _Running:
    job: Job
    folder: Path
    fds: dict[int, str] = field(default_factory=dict)  # read end -> stream name
    keep_open: list[int] = field(default_factory=list)  # our write ends of the FIFOs
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    pidfd: int | None = None
    started: float | None = None
    deadline: float | None = None
    out: _Tail = field(default_factory=_Tail)
    err: _Tail = field(default_factory=_Tail)
    ev_buffer: bytearray = field(default_factory=bytearray)
    ev_total: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    fault: Fault | None = None
    returncode: int | None = None
    group: str = ""
    line: int | None = None


@dataclass(kw_only=True, eq=False)
class _Server:
    """A fork server: one per distinct preamble."""

    proc: subprocess.Popen[bytes]
    buffer: bytearray = field(default_factory=bytearray)
    err: _Tail = field(default_factory=_Tail)
    ready: bool = False
    waiting: list[_Running] = field(default_factory=list)


class Executor:
    """Runs jobs, at most ``jobs`` at a time, forked from warm servers or spawned."""

    def __init__(self, *, settings: RunSettings, jobs: int, start_method: str) -> None:
        self._settings = settings
        self._jobs = max(1, jobs)
        self._fork = start_method == "fork"
        self._selector = selectors.DefaultSelector()
        self._servers: dict[str, _Server] = {}
        self._running: dict[str, _Running] = {}
        self._counter = 0
        self._stopping = False
        self._folder = Path(tempfile.mkdtemp(prefix="isolated-doctest-", dir=_scratch_dir()))

    # -- public -------------------------------------------------------------

    def run(self, jobs: Iterable[Job]) -> Iterator[JobResult]:
        """Run ``jobs`` and yield each result as it comes; :meth:`stop` starts no more.

        Jobs are started in the order given.  However this generator ends (an
        exception, a Ctrl-C, being closed early), every child and server it
        started is killed before it returns.
        """
        queue = deque(jobs)
        try:
            while queue or self._running:
                while queue and not self._stopping and len(self._running) < self._jobs:
                    self._start(queue.popleft())
                if self._stopping:
                    queue.clear()
                    if not self._running:
                        break
                self._poll()
                for running in [r for r in self._running.values() if r.returncode is not None]:
                    yield self._finish(running)
        finally:
            self.close()

    def stop(self) -> None:
        """Start no further jobs; those running finish and are still yielded."""
        self._stopping = True

    def close(self) -> None:
        for running in list(self._running.values()):
            self._kill(running)
            self._release(running)
        self._running.clear()
        for server in self._servers.values():
            self._stop_server(server)
        self._servers.clear()
        self._selector.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    # -- starting -------------------------------------------------------------

    def _start(self, job: Job) -> None:
        self._counter += 1
        folder = self._folder / f"job{self._counter}"
        folder.mkdir()
        running = _Running(job=job, folder=folder)
        for name in ("out", "err", "ev"):
            path = folder / name
            os.mkfifo(path, 0o600)
            read = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            # Holding a write end ourselves means "no writer yet" reads as
            # "nothing yet" rather than end of file.
            running.keep_open.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            running.fds[read] = name
            self._selector.register(read, selectors.EVENT_READ, (self._on_stream, running))
        self._running[str(folder)] = running
        if self._fork:
            self._send_to_server(running)
        else:
            self._spawn(running)

    def _spawn(self, running: _Running) -> None:
        wire = {"job": running.job.wire(self._settings)}
        (running.folder / "job.json").write_text(json.dumps(wire), encoding="utf-8")
        out_w, err_w = running.keep_open[0], running.keep_open[1]
        proc = subprocess.Popen(
            [sys.executable, CHILD_SCRIPT, "once", str(running.folder)],
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
        )
        running.proc = proc
        running.pid = proc.pid
        self._mark_started(running)
        try:
            running.pidfd = os.pidfd_open(proc.pid)
            self._selector.register(running.pidfd, selectors.EVENT_READ, (self._on_exit, running))
        except (AttributeError, OSError):
            running.pidfd = None  # polled in _poll instead

    def _server_for(self, running: _Running) -> _Server:
        preamble = running.job.preamble
        server = self._servers.get(preamble.source)
        if server is not None:
            return server
        folder = self._folder / f"server{len(self._servers) + 1}"
        folder.mkdir()
        config = {
            "sys_path": list(self._settings.sys_path),
            "preamble": preamble.source,
            "preamble_origin": preamble.origin,
        }
        (folder / "server.json").write_text(json.dumps(config), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, CHILD_SCRIPT, "serve", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        server = _Server(proc=proc)
        assert proc.stdout is not None and proc.stderr is not None
        os.set_blocking(proc.stdout.fileno(), False)
        os.set_blocking(proc.stderr.fileno(), False)
        self._selector.register(proc.stdout, selectors.EVENT_READ, (self._on_control, server))
        self._selector.register(proc.stderr, selectors.EVENT_READ, (self._on_server_err, server))
        self._servers[preamble.source] = server
        return server

    def _send_to_server(self, running: _Running) -> None:
        server = self._server_for(running)
        if server.ready:
            self._request(server, running)
        else:
            server.waiting.append(running)

    def _request(self, server: _Server, running: _Running) -> None:
        assert server.proc.stdin is not None
        try:
            request = {"folder": str(running.folder), "job": running.job.wire(self._settings)}
            server.proc.stdin.write(json.dumps(request).encode() + b"\n")
            server.proc.stdin.flush()
        except OSError:
            self._server_died(server)

    def _mark_started(self, running: _Running) -> None:
        running.started = time.monotonic()
        self._set_deadline(running, running.job.groups[0].name if running.job.groups else "")

    def _set_deadline(self, running: _Running, group: str) -> None:
        running.group = group
        timeout = running.job.timeout_for(group)
        running.deadline = time.monotonic() + timeout if timeout > 0 else None

    # -- watching -----------------------------------------------------------

    def _poll(self) -> None:
        now = time.monotonic()
        deadlines = [r.deadline for r in self._running.values() if r.deadline is not None]
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        if any(r.proc is not None and r.pidfd is None for r in self._running.values()):
            timeout = 0.05 if timeout is None else min(timeout, 0.05)
        for key, _mask in self._selector.select(timeout):
            callback, owner = key.data
            callback(key.fd, owner)
        now = time.monotonic()
        for running in list(self._running.values()):
            if running.deadline is not None and now >= running.deadline and running.fault is None:
                timeout_s = running.job.timeout_for(running.group)
                running.fault = Fault(kind="timeout", message=f"timed out after {timeout_s:g} s")
                self._kill(running)
            proc = running.proc
            polled = proc is not None and running.pidfd is None and running.returncode is None
            if polled and proc is not None and proc.poll() is not None:
                self._reap(running)

    def _on_stream(self, fd: int, running: _Running) -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._selector.unregister(fd)
            return
        name = running.fds[fd]
        if name == "ev":
            self._on_events(running, chunk)
        else:
            (running.out if name == "out" else running.err).feed(chunk)
            if running.out.total + running.err.total > OUTPUT_LIMIT and running.fault is None:
                running.fault = Fault(
                    kind="flood",
                    message=f"flooded its output (more than {OUTPUT_LIMIT // 2**20} MiB "
                    "written to stdout and stderr) and was stopped",
                )
                self._kill(running)

    def _on_events(self, running: _Running, chunk: bytes) -> None:
        running.ev_total += len(chunk)
        if running.ev_total > EVENT_LIMIT and running.fault is None:
            running.fault = Fault(
                kind="flood",
                message=f"flooded its report (more than {EVENT_LIMIT // 2**20} MiB) "
                "and was stopped",
            )
            self._kill(running)
            return
        running.ev_buffer += chunk
        *lines, rest = running.ev_buffer.split(b"\n")
        running.ev_buffer = bytearray(rest)
        for line in lines:
            event = json.loads(line)
            running.events.append(event)
            if event["t"] == "group":
                self._set_deadline(running, event["name"])
            elif event["t"] == "start":
                running.line = event["line"]

    def _on_exit(self, fd: int, running: _Running) -> None:
        self._selector.unregister(fd)
        self._reap(running)

    def _reap(self, running: _Running) -> None:
        assert running.proc is not None and running.pid is not None
        # The child is a zombie until we wait: its process group cannot be
        # reused, so killing it now reaches only what the example left behind.
        with contextlib.suppress(OSError):
            os.killpg(running.pid, signal.SIGKILL)
        running.returncode = running.proc.wait()

    def _on_control(self, fd: int, server: _Server) -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._selector.unregister(fd)
            self._server_died(server)
            return
        server.buffer += chunk
        *lines, rest = server.buffer.split(b"\n")
        server.buffer = bytearray(rest)
        for line in lines:
            message = json.loads(line)
            kind = message["t"]
            if kind == "ready":
                server.ready = True
                for running in server.waiting:
                    self._request(server, running)
                server.waiting.clear()
                continue
            job = self._running.get(message["job"])
            if job is None:
                continue
            if kind == "started":
                job.pid = message["pid"]
                self._mark_started(job)
            elif kind == "exit":
                job.returncode = os.waitstatus_to_exitcode(message["status"])

    def _on_server_err(self, fd: int, server: _Server) -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._selector.unregister(fd)
            return
        server.err.feed(chunk)

    def _server_died(self, server: _Server) -> None:
        server.proc.poll()
        detail = server.err.text().strip()
        for running in self._running.values():
            if running.returncode is None and (
                running in server.waiting or self._server_for_job(running) is server
            ):
                running.fault = running.fault or Fault(
                    kind="server",
                    message="lost its fork server"
                    + (f" (exit status {server.proc.returncode})" if server.proc.returncode else "")
                    + (f": {detail.splitlines()[-1]}" if detail else ""),
                )
                self._kill(running)
                running.returncode = -signal.SIGKILL
        server.waiting.clear()

    def _server_for_job(self, running: _Running) -> _Server | None:
        return self._servers.get(running.job.preamble.source) if self._fork else None

    # -- ending ---------------------------------------------------------------

    def _kill(self, running: _Running) -> None:
        if running.pid is not None:
            with contextlib.suppress(OSError):
                os.killpg(running.pid, signal.SIGKILL)

    def _finish(self, running: _Running) -> JobResult:
        for fd in list(running.fds):
            while True:
                try:
                    chunk = os.read(fd, 1 << 16)
                except (BlockingIOError, OSError):
                    break
                if not chunk:
                    break
                name = running.fds[fd]
                if name == "ev":
                    if running.fault is None:
                        self._on_events(running, chunk)
                else:
                    (running.out if name == "out" else running.err).feed(chunk)
        self._release(running)
        del self._running[str(running.folder)]
        events = tuple(running.events)
        assert running.returncode is not None
        fault = running.fault or describe_exit(running.returncode, events)
        started = running.started or time.monotonic()
        return JobResult(
            index=running.job.index,
            events=events,
            fault=fault,
            stdout_tail=running.out.text(),
            stderr_tail=running.err.text(),
            duration=time.monotonic() - started,
        )

    def _release(self, running: _Running) -> None:
        for fd in [*running.fds, *running.keep_open]:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        running.fds.clear()
        running.keep_open.clear()
        if running.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(running.pidfd)
            with contextlib.suppress(OSError):
                os.close(running.pidfd)
            running.pidfd = None
        if running.proc is not None and running.returncode is None:
            running.proc.kill()
            running.proc.wait()
        shutil.rmtree(running.folder, ignore_errors=True)

    def _stop_server(self, server: _Server) -> None:
        proc = server.proc
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(stream)
                with contextlib.suppress(OSError):
                    stream.close()
        # The server's group holds the server and its monitors; workers have
        # their own groups and were killed with their jobs.
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

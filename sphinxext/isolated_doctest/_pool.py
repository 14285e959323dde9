"""Run jobs in child processes: start them, watch them, time them out, kill them.

One selector loop in the sphinx-build process watches each child's exit (a
pidfd, or the fork server's answer) and its deadline.  A child writes its
results and its stdout and stderr to files in a memory-backed scratch folder;
they are read once, when it has ended.  Nothing here decides policy: each
finished job becomes a :class:`JobResult`.
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

from sphinxext.isolated_doctest._result import (
    OUTPUT_LIMIT,
    Fault,
    JobResult,
    describe_exit,
    flood_fault,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from sphinxext.isolated_doctest._job import Job, Preamble, RunSettings

CHILD_SCRIPT = str(Path(__file__).with_name("_child.py"))

#: How much of the end of a child's stdout and stderr is kept for reports.
TAIL_BYTES = 8 * 1024


def _scratch_dir() -> str | None:
    """Where job files go: memory-backed where there is such a place, since
    each job creates and removes a few of them."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


def _tail(path: str) -> str:
    """The last TAIL_BYTES of a file, decoded whatever the bytes are."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="backslashreplace")
    if size > len(data):
        text = f"[... {size - len(data)} bytes before this ...]\n{text}"
    return text


def _flooded(prefix: str) -> bool:
    """Whether stdout or stderr reached the size limit (a write is cut short there)."""
    for suffix in (".out", ".err"):
        with contextlib.suppress(OSError):
            if os.stat(prefix + suffix).st_size >= OUTPUT_LIMIT:
                return True
    return False


def _read_events(path: str) -> list[dict[str, Any]]:
    """The child's events; a line cut short by its death is dropped."""
    try:
        with open(path, "rb") as f:
            data = f.read(OUTPUT_LIMIT)
    except OSError:
        return []
    events = []
    for line in data.split(b"\n"):
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


@dataclass(kw_only=True, eq=False)
class _Running:
    job: Job
    prefix: str
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    pidfd: int | None = None
    started: float | None = None
    deadline: float | None = None
    fault: Fault | None = None
    returncode: int | None = None


@dataclass(kw_only=True, eq=False)
class _Server:
    """A fork server: one per distinct preamble."""

    proc: subprocess.Popen[bytes]
    preamble: Preamble
    #: The environment the server (and so every worker) started with.
    environ: dict[str, str]
    used: bool = False
    buffer: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
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
        #: What each fork server wrote to stderr (its preamble's warnings, say),
        #: filled in as the servers stop.
        self.server_stderr: list[tuple[Preamble, str]] = []
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
        """Kill every child and server; safe to call more than once."""
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

    def _wire(self, job: Job) -> dict[str, Any]:
        return {**job.wire(self._settings), "output_limit": OUTPUT_LIMIT}

    def _start(self, job: Job) -> None:
        self._counter += 1
        running = _Running(job=job, prefix=str(self._folder / f"job{self._counter}"))
        self._running[running.prefix] = running
        if self._fork:
            self._send_to_server(running)
        else:
            self._spawn(running)

    def _spawn(self, running: _Running) -> None:
        prefix = running.prefix
        Path(f"{prefix}.json").write_text(json.dumps(self._wire(running.job)), encoding="utf-8")
        # Open the output files here too, so that what the preamble prints is kept.
        with open(f"{prefix}.out", "ab") as out, open(f"{prefix}.err", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, CHILD_SCRIPT, "once", prefix],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
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

    def prepare(self, preamble: Preamble) -> None:
        """Start the fork server for ``preamble`` now, so that its start-up
        overlaps whatever the build does before the first job."""
        if self._fork:
            self._server_for(preamble)

    def _server_for(self, preamble: Preamble) -> _Server:
        server = self._servers.get(preamble.source)
        if server is not None:
            return server
        self._counter += 1
        config = self._folder / f"server{self._counter}.json"
        config.write_text(
            json.dumps({
                "sys_path": list(self._settings.sys_path),
                "preamble": preamble.source,
                "preamble_origin": preamble.origin,
            }),
            encoding="utf-8",
        )
        proc = subprocess.Popen(
            [sys.executable, CHILD_SCRIPT, "serve", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        server = _Server(proc=proc, preamble=preamble, environ=dict(os.environ))
        assert proc.stdout is not None and proc.stderr is not None
        os.set_blocking(proc.stdout.fileno(), False)
        os.set_blocking(proc.stderr.fileno(), False)
        self._selector.register(proc.stdout, selectors.EVENT_READ, (self._on_control, server))
        self._selector.register(proc.stderr, selectors.EVENT_READ, (self._on_server_err, server))
        self._servers[preamble.source] = server
        return server

    def _send_to_server(self, running: _Running) -> None:
        server = self._server_for(running.job.preamble)
        if server.environ != os.environ and not server.used:
            # Started early (see prepare) and the environment changed since:
            # examples must see the environment of the run, so start afresh.
            self._stop_server(server)
            del self._servers[running.job.preamble.source]
            server = self._server_for(running.job.preamble)
        server.used = True
        if server.ready:
            self._request(server, running)
        else:
            server.waiting.append(running)

    def _request(self, server: _Server, running: _Running) -> None:
        assert server.proc.stdin is not None
        request = {"prefix": running.prefix, "job": self._wire(running.job)}
        try:
            server.proc.stdin.write(json.dumps(request).encode() + b"\n")
            server.proc.stdin.flush()
        except OSError:
            self._server_died(server)

    def _mark_started(self, running: _Running) -> None:
        running.started = time.monotonic()
        timeouts = [spec.timeout for spec in running.job.groups]
        # A job of several groups (one page) may take each group's time; no
        # limit if any group has none.
        if timeouts and all(timeouts):
            running.deadline = running.started + sum(timeouts)

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
                seconds = running.deadline - (running.started or now)
                running.fault = Fault(kind="timeout", message=f"timed out after {seconds:g} s")
                self._kill(running)
            proc = running.proc
            polled = proc is not None and running.pidfd is None and running.returncode is None
            if polled and proc is not None and proc.poll() is not None:
                self._reap(running)

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

    def _read(self, fd: int) -> bytes | None:
        """What a server pipe has now: ``b""`` at its end (and unwatched), None if nothing."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        if not chunk:
            self._selector.unregister(fd)
        return chunk

    def _on_control(self, fd: int, server: _Server) -> None:
        chunk = self._read(fd)
        if chunk is None:
            return
        if not chunk:
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
        chunk = self._read(fd)
        if chunk:
            server.err += chunk
            del server.err[:-TAIL_BYTES]

    def _server_died(self, server: _Server) -> None:
        server.proc.poll()
        lines = server.err.decode("utf-8", "backslashreplace").strip().splitlines()
        status = server.proc.returncode
        message = "lost its fork server" + (f" (exit status {status})" if status else "")
        if lines:
            message += f": {lines[-1]}"
        for running in self._running.values():
            mine = self._servers.get(running.job.preamble.source) is server
            if running.returncode is None and self._fork and mine:
                running.fault = running.fault or Fault(kind="server", message=message)
                self._kill(running)
                running.returncode = -signal.SIGKILL
        server.waiting.clear()

    # -- ending ---------------------------------------------------------------

    def _kill(self, running: _Running) -> None:
        if running.pid is not None:
            with contextlib.suppress(OSError):
                os.killpg(running.pid, signal.SIGKILL)

    def _finish(self, running: _Running) -> JobResult:
        prefix = running.prefix
        events = tuple(_read_events(f"{prefix}.ev"))
        stdout, stderr = _tail(f"{prefix}.out"), _tail(f"{prefix}.err")
        if running.fault is None and _flooded(prefix):
            running.fault = flood_fault()
        self._release(running)
        del self._running[prefix]
        assert running.returncode is not None
        fault = running.fault or describe_exit(running.returncode, events)
        started = running.started or time.monotonic()
        return JobResult(
            index=running.job.index,
            events=events,
            fault=fault,
            stdout_tail=stdout,
            stderr_tail=stderr,
            duration=time.monotonic() - started,
        )

    def _release(self, running: _Running) -> None:
        if running.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(running.pidfd)
            with contextlib.suppress(OSError):
                os.close(running.pidfd)
            running.pidfd = None
        if running.proc is not None and running.returncode is None:
            running.proc.kill()
            running.proc.wait()
        for suffix in (".ev", ".out", ".err", ".json"):
            with contextlib.suppress(OSError):
                os.unlink(running.prefix + suffix)

    def _stop_server(self, server: _Server) -> None:
        proc = server.proc
        if proc.stderr is not None:
            with contextlib.suppress(OSError):
                while chunk := os.read(proc.stderr.fileno(), 1 << 16):
                    server.err += chunk
                    del server.err[:-TAIL_BYTES]
        text = server.err.decode("utf-8", "backslashreplace")
        if text.strip():
            self.server_stderr.append((server.preamble, text))
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(stream)
                with contextlib.suppress(OSError):
                    stream.close()
        # The server's group holds the server itself; workers have groups of
        # their own and were killed with their jobs.
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

"""Run jobs in child processes: start them, watch them, time them out, kill them.

Jobs are *submitted* as soon as they are known (the builder submits a page's
jobs while Sphinx is still reading the others) and their results *collected*
later, in whatever order they finish.

With the ``fork`` start method, every job goes straight to the fork server of
its preamble, which queues it and forks a worker once it has locked one of
the slots all servers share: the servers keep the cores busy on their own,
without waiting for this process.  With ``spawn``, this process starts a fresh
interpreter per job, at most ``jobs`` at a time.

One selector loop watches the servers' answers, each spawned child's exit (a
pidfd) and every deadline.  A child writes its results and its stdout and stderr
to files in a memory-backed scratch folder, read once it has ended.  Nothing
here decides policy: each finished job becomes a :class:`JobResult`.

However this process ends, nothing it started outlives it (see the
"Processes" part of ``_child.py``): a fork server and a spawned job's
supervisor end all they run when this process dies, even of SIGKILL; a small
watcher removes the scratch folder then; and :meth:`Executor.close` does its
work with SIGINT held, so that a second Ctrl-C cannot cut it short.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import marshal
import os
import selectors
import shutil
import signal
import socket  # noqa: F401  # loaded before a fork that enters a network namespace
import struct  # noqa: F401  # (idem)
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The child side's codec and process handling; that module imports nothing but
# the interpreter's own until asked to.
from sphinxext.isolated_doctest._child import (
    ROOT_LEADER,
    Native,
    contain,
    frame,
    kill_tree,
    record_root,
    unframe,
)
from sphinxext.isolated_doctest._job import NO_SANDBOX, Sandbox
from sphinxext.isolated_doctest._result import (
    OUTPUT_LIMIT,
    RELAY_LIMIT,
    Fault,
    JobResult,
    describe_exit,
    flood_fault,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from sphinxext.isolated_doctest._job import Job, Preamble, RunSettings

CHILD_SCRIPT = str(Path(__file__).with_name("_child.py"))


@functools.cache
def _child_bytecode() -> bytes:
    """``_child.py`` compiled, as a .pyc file holds it (compiled once per process)."""
    import importlib.util

    source = Path(CHILD_SCRIPT)
    stat = source.stat()
    code = compile(source.read_bytes(), CHILD_SCRIPT, "exec", dont_inherit=True)
    header = importlib.util.MAGIC_NUMBER + bytes(4) + b"".join(
        (n & 0xFFFFFFFF).to_bytes(4, "little") for n in (int(stat.st_mtime), stat.st_size)
    )
    return header + marshal.dumps(code)


def child_program(folder: Path) -> str:
    """What a child runs: ``_child.py`` as bytecode written into ``folder``.

    A script run from its source is compiled at every start, which costs more
    than the rest of a forked group's whole run, and every spawned group
    would pay it; the interpreter runs a .pyc file as it runs a script.
    """
    program = folder / "child.pyc"
    try:
        program.write_bytes(_child_bytecode())
    except (OSError, SyntaxError):
        return CHILD_SCRIPT
    return str(program)

#: How much of the end of a child's stdout and stderr is kept for reports.
TAIL_BYTES = 8 * 1024
#: How long :meth:`Executor.close` lets a server or supervisor end what it
#: runs before it kills them all itself.
STOP_SECONDS = 5.0
#: The signals :meth:`Executor.close` holds until it is done.
HELD_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def _scratch_dir(jobs: int) -> str | None:
    """Where job files go: memory-backed, since each job creates and removes a
    few of them, where there is such a place with room for every running job's
    files at their limit; else the system's temporary folder.  (A container's
    /dev/shm is often 64 MiB: one flooding group would fill it, and the other
    groups' results would be lost for want of space.)"""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        free = os.statvfs(shm)
        # stdout, stderr and results: each may reach the limit.
        if free.f_bavail * free.f_frsize >= jobs * 3 * OUTPUT_LIMIT:
            return shm
    return None


def _read_output(path: str) -> tuple[str, str, int]:
    """A child's stdout or stderr: its first RELAY_LIMIT bytes, one character
    per byte (latin-1); its last TAIL_BYTES, decoded whatever the bytes are;
    and its size."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return "", "", 0
    try:
        size = os.fstat(fd).st_size
        if not size:
            return "", "", 0
        head = os.pread(fd, RELAY_LIMIT, 0)
        data = head[-TAIL_BYTES:] if size <= RELAY_LIMIT else os.pread(
            fd, TAIL_BYTES, max(0, size - TAIL_BYTES)
        )
    finally:
        os.close(fd)
    text = data.decode("utf-8", errors="backslashreplace")
    if size > len(data):
        text = f"[... {size - len(data)} bytes before this ...]\n{text}"
    return head.decode("latin-1"), text, size


def _read_events(path: str) -> tuple[dict[str, Any], ...]:
    """The child's events; one cut short by its death is dropped."""
    try:
        with open(path, "rb") as f:
            data = f.read(OUTPUT_LIMIT)
    except OSError:
        return ()
    return tuple(unframe(data)[0])


def slot_files(folder: Path, jobs: int) -> list[str]:
    """The slots that fork servers share, one file per job that may run at once
    (a server locks one per worker: see ``_child._Server``)."""
    paths = [str(folder / f"slot{n}") for n in range(jobs)]
    for path in paths:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return paths


def bell_pipe() -> tuple[int, int]:
    """The pipe a fork server rings when it frees a slot."""
    bell = os.pipe()
    # Every waiting server polls it, and a ring one server takes another was
    # also woken for: reading must not wait; nor writing, once it is full.
    for fd in bell:
        os.set_blocking(fd, False)
    return bell


def server_config(
    *,
    settings: RunSettings,
    preamble: Preamble,
    slots: list[str],
    bell: tuple[int, int],
    roots: str,
) -> bytes:
    """The frame a fork server reads first (``_child.py serve CONFIG``)."""
    return frame({
        **settings.child(),
        "preamble": preamble.wire(),
        "slots": slots,
        "bell": list(bell),
        "roots": roots,
        "parent": os.getpid(),
        "output_limit": OUTPUT_LIMIT,
    })


def job_wire(job: Job, settings: RunSettings) -> dict[str, Any]:
    """A job as a child reads it."""
    return {**job.wire(settings), "output_limit": OUTPUT_LIMIT}


def child_environ(sandbox: Sandbox) -> dict[str, str]:
    """The environment a child starts with: this one, cut to the sandbox's names."""
    environ = dict(os.environ)
    if sandbox.env is None:
        return environ
    return {k: v for k, v in environ.items() if any(fnmatchcase(k, p) for p in sandbox.env)}


def server_preexec(*, network: bool) -> Callable[[], None]:
    """What runs in a fork server's process before it becomes the server: it
    becomes a child subreaper that dies with this process, and enters a
    network namespace of its own if ``network`` is off.

    The fork server runs the preamble first thing, so it cannot do this itself
    (ctypes would show in the preamble's modules); ctypes is loaded here, in
    the build's own process, before the fork.  PR_SET_PDEATHSIG kills the
    server, should the build die, until the server has run its preamble; then
    it watches the build itself, to end its workers first.
    """
    parent = os.getpid()
    Native.load()

    def preexec() -> None:
        if not contain(parent=parent, death_signal=signal.SIGKILL):
            os._exit(1)
        if not network:
            Native.own_network()

    return preexec


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP (in this thread) until the block ends:
    a second Ctrl-C then arrives once the clean-up is done, not in the middle."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def start_watcher(folder: Path, program: str) -> subprocess.Popen[bytes]:
    """A process that removes ``folder`` when this process dies or closes its
    standard input (``_child.py watch``)."""
    return subprocess.Popen(
        [sys.executable, "-I", "-S", program, "watch", str(folder), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@dataclass(kw_only=True, eq=False)
class _Run:
    """One submitted job, from submission to its result."""

    ticket: int
    job: Job
    prefix: str
    server: _Server | None = None
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    pidfd: int | None = None
    started: float | None = None
    deadline: float | None = None
    ended: float | None = None
    fault: Fault | None = None
    returncode: int | None = None
    cancelled: bool = False


@dataclass(kw_only=True, eq=False)
class _Server:
    """A fork server: one per distinct preamble (and sandbox environment and network)."""

    proc: subprocess.Popen[bytes]
    preamble: Preamble
    key: tuple[Any, ...]
    #: The environment the server (and so every worker) started with.
    environ: dict[str, str]
    used: bool = False
    dead: bool = False
    #: It has run its preamble and listens.
    ready: bool = False
    #: It has started a worker (see _server_died).
    started_any: bool = False
    answers: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    #: Requests not yet written to the server (its pipe was full, or it was starting).
    outgoing: bytearray = field(default_factory=bytearray)
    writing: bool = False


class Executor:
    """Runs jobs, at most ``jobs`` at a time, forked from warm servers or spawned."""

    def __init__(self, *, settings: RunSettings, jobs: int, start_method: str) -> None:
        self._settings = settings
        self._jobs = max(1, jobs)
        self._fork = start_method == "fork"
        self._selector = selectors.DefaultSelector()
        #: By (preamble source, environment names, network): see _server_for.
        self._servers: dict[tuple[Any, ...], _Server] = {}
        self._retired: list[_Server] = []  # servers that died and were replaced
        self._runs: dict[int, _Run] = {}  # submitted, not yet collected
        #: Started and not ended: the only runs with a deadline or a child to poll.
        self._started: dict[int, _Run] = {}
        self._by_prefix: dict[str, _Run] = {}
        self._done: deque[_Run] = deque()  # ended, waiting to be collected
        self._spawn_queue: deque[_Run] = deque()
        self._spawned = 0  # spawned children still running
        self._counter = 0
        #: What each fork server wrote to stderr (its preamble's warnings, say),
        #: filled in as the servers stop.
        self.server_stderr: list[tuple[Preamble, str]] = []
        self._closed = False
        # Named after this process, so that what it leaves can be told apart.
        self._folder = Path(tempfile.mkdtemp(
            prefix=f"isolated-doctest-{os.getpid()}-", dir=_scratch_dir(jobs)
        ))
        # Every process that runs a job, as its server or supervisor lists it.
        self._roots = str(self._folder / "roots")
        os.close(os.open(self._roots, os.O_WRONLY | os.O_CREAT, 0o600))
        self._program = child_program(self._folder)
        self._watcher = start_watcher(self._folder, self._program)
        self._slots: list[str] = []
        self._bell: tuple[int, int] | None = None
        if self._fork:
            self._slots = slot_files(self._folder, self._jobs)
            self._bell = bell_pipe()
        # A Ctrl-C while Sphinx reads the pages ends the build without a
        # build-finished event: the children must not outlive it either.  (If
        # this process is killed, they end on their own: see _child.py.)
        atexit.register(self.close)

    # -- public -------------------------------------------------------------

    def prepare(self, preamble: Preamble, sandbox: Sandbox = NO_SANDBOX) -> None:
        """Start the fork server for ``preamble`` (and ``sandbox``) now, so that
        its start-up overlaps whatever the build does before the first job."""
        if self._fork:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._server_for(preamble, sandbox)

    def configure(self, settings: RunSettings) -> None:
        """Run the jobs submitted from now on with ``settings``; fork servers
        keep what they started with (``RunSettings.child``)."""
        self._settings = settings

    def submit(self, job: Job) -> int:
        """Start ``job`` as soon as a slot is free; return its ticket."""
        self._counter += 1
        run = _Run(ticket=self._counter, job=job, prefix=str(self._folder / f"job{self._counter}"))
        self._runs[run.ticket] = run
        self._by_prefix[run.prefix] = run
        if self._fork:
            self._send_to_server(run)
        else:
            self._spawn_queue.append(run)
            self._spawn_more()
        return run.ticket

    def cancel(self, tickets: Iterable[int]) -> set[int]:
        """Forget these jobs: drop them if not started, kill them if running.

        Return the tickets cancelled: not those already ended, whose results
        :meth:`results` still yields.
        """
        drops: dict[int, list[str]] = {}
        cancelled = set()
        for ticket in tickets:
            run = self._runs.get(ticket)
            if run is None or run.cancelled or run.returncode is not None:
                continue
            run.cancelled = True
            cancelled.add(ticket)
            if run.pid is not None:
                self._kill(run)
            elif run.server is not None:
                drops.setdefault(id(run.server), []).append(run.prefix)
            elif run in self._spawn_queue:
                self._spawn_queue.remove(run)
                self._forget(run)
        for server in self._servers.values():
            prefixes = drops.get(id(server))
            if prefixes:
                self._write(server, frame({"t": "drop", "jobs": prefixes}))
        return cancelled

    def pump(self) -> None:
        """Handle whatever has happened, without waiting."""
        self._poll(0)

    def results(self) -> Iterator[tuple[int, JobResult]]:
        """``(ticket, result)`` for every job submitted and not cancelled, as each ends.

        However this generator ends (an exception, a Ctrl-C, being closed
        early), every child and server is killed before it returns.
        """
        try:
            while self._runs or self._done:
                while self._done:
                    run = self._done.popleft()
                    result = self._finish(run)
                    if not run.cancelled:
                        yield run.ticket, result
                if self._runs:
                    self._poll(None)
        finally:
            self.close()

    def close(self) -> None:
        """End every child and server, and all they started; safe to call more
        than once.

        It runs with SIGINT, SIGTERM and SIGHUP held: a second Ctrl-C, a
        moment after the first, takes effect once everything is ended.  It
        stays registered with atexit until it has finished.
        """
        if self._closed:
            return
        with signals_held():
            self._close()
            self._closed = True
        atexit.unregister(self.close)

    def _close(self) -> None:
        servers = [*self._servers.values(), *self._retired]
        supervised = [r for r in self._runs.values() if r.proc is not None]
        # Each server and each spawned job's supervisor ends what it runs, and
        # all that started, at the same time as the others; this process then
        # waits for them, and kills any that does not end in time itself.
        for server in servers:
            self._ask_to_stop(server)
        for run in supervised:
            if run.returncode is None:
                self._kill(run)
        deadline = time.monotonic() + STOP_SECONDS
        for server in servers:
            self._stop_server(server, deadline)
        for run in supervised:
            self._await(run, deadline)
        self._servers.clear()
        self._retired.clear()
        for run in list(self._runs.values()):
            self._release(run)
        self._runs.clear()
        self._started.clear()
        self._done.clear()
        self._selector.close()
        if self._bell is not None:
            for fd in self._bell:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._bell = None
        # The watcher ends any job's process still there (a worker whose server
        # died as this process closed stops, and waits to be ended), then
        # removes the scratch folder.
        watcher = self._watcher
        if watcher.stdin is not None:
            watcher.stdin.close()
        try:
            watcher.wait(2 * STOP_SECONDS)
        except subprocess.TimeoutExpired:
            watcher.kill()
            watcher.wait()
        shutil.rmtree(self._folder, ignore_errors=True)

    # -- starting -------------------------------------------------------------

    def _spawn_more(self) -> None:
        while self._spawn_queue and self._spawned < self._jobs:
            self._spawn(self._spawn_queue.popleft())

    def _spawn(self, run: _Run) -> None:
        prefix = run.prefix
        sandbox = run.job.sandbox
        Path(f"{prefix}.job").write_bytes(frame(job_wire(run.job, self._settings)))
        # Started in a network namespace of its own, with its preamble.
        preexec = None if sandbox.network else Native.own_network
        argv = [sys.executable, self._program, "once", prefix, str(os.getpid()),
                str(sandbox.disk), self._roots]
        # Open the output files here too, so that what the preamble prints is kept.
        try:
            with open(f"{prefix}.out", "ab") as out, open(f"{prefix}.err", "ab") as err:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    env=child_environ(sandbox) if sandbox.env is not None else None,
                    preexec_fn=preexec,
                )
        except (OSError, subprocess.SubprocessError) as exc:
            why = "could not enter its network namespace" if preexec else str(exc)
            self._fail(run, Fault(kind="start", message=f"could not start: {why}"))
            return
        record_root(self._roots, proc.pid, ROOT_LEADER)
        self._spawned += 1
        run.proc = proc
        run.pid = proc.pid
        self._mark_started(run, time.monotonic())
        try:
            run.pidfd = os.pidfd_open(proc.pid)
            self._selector.register(run.pidfd, selectors.EVENT_READ, (self._on_exit, run))
        except (AttributeError, OSError):
            run.pidfd = None  # polled in _poll instead

    def _server_for(self, preamble: Preamble, sandbox: Sandbox) -> _Server:
        key = (preamble.source, sandbox.env, sandbox.network)
        server = self._servers.get(key)
        if server is not None:
            return server
        assert self._bell is not None
        self._counter += 1
        config = self._folder / f"server{self._counter}"
        config.write_bytes(server_config(
            settings=self._settings, preamble=preamble, slots=self._slots,
            bell=self._bell, roots=self._roots,
        ))
        environ = child_environ(sandbox)
        proc = subprocess.Popen(
            [sys.executable, self._program, "serve", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=self._bell,
            env=environ,
            preexec_fn=server_preexec(network=sandbox.network),
        )
        record_root(self._roots, proc.pid, ROOT_LEADER)
        server = _Server(proc=proc, preamble=preamble, key=key, environ=environ)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
        for stream in (proc.stdin, proc.stdout):
            # Room for a build's worth of requests and answers, so that neither
            # side waits while Sphinx is busy reading pages.
            with contextlib.suppress(AttributeError, OSError):
                fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        self._selector.register(proc.stdout, selectors.EVENT_READ, (self._on_answers, server))
        self._selector.register(proc.stderr, selectors.EVENT_READ, (self._on_server_err, server))
        self._servers[key] = server
        return server

    def _send_to_server(self, run: _Run) -> None:
        sandbox = run.job.sandbox
        try:
            server = self._server_for(run.job.preamble, sandbox)
            if not server.used and server.environ != child_environ(sandbox):
                # Started early (see prepare) and the environment changed since:
                # examples must see the environment of the run, so start afresh.
                self._ask_to_stop(server)
                self._stop_server(server, time.monotonic() + STOP_SECONDS)
                del self._servers[server.key]
                server = self._server_for(run.job.preamble, sandbox)
        except (OSError, subprocess.SubprocessError) as exc:
            why = "could not enter its network namespace" if not sandbox.network else str(exc)
            self._fail(run, Fault(kind="server", message=f"could not start its fork server: {why}"))
            return
        server.used = True
        run.server = server
        if server.dead:
            self._fail(run, self._server_fault(server))
            return
        # The job itself is framed apart: the worker decodes it, not the server.
        wire = marshal.dumps(job_wire(run.job, self._settings))
        self._write(server, frame({"t": "run", "job": run.prefix, "wire": wire,
                                   "disk": sandbox.disk}))

    def _write(self, server: _Server, data: bytes) -> None:
        """Send ``data`` to the server, now if its pipe takes it, else when it does."""
        if server.dead:
            return
        server.outgoing += data
        self._flush(server)

    def _flush(self, server: _Server) -> None:
        stdin = server.proc.stdin
        assert stdin is not None
        while server.outgoing:
            try:
                n = os.write(stdin.fileno(), server.outgoing)
            except BlockingIOError:
                break
            except OSError:
                self._server_died(server)
                return
            del server.outgoing[:n]
        wanted = bool(server.outgoing)
        if wanted != server.writing:
            if wanted:
                self._selector.register(stdin, selectors.EVENT_WRITE, (self._on_writable, server))
            else:
                self._selector.unregister(stdin)
            server.writing = wanted

    def _mark_started(self, run: _Run, when: float) -> None:
        run.started = when
        self._started[run.ticket] = run
        timeouts = [spec.timeout for spec in run.job.groups]
        # A job of several groups (one page) may take each group's time; no
        # limit if any group has none.
        if timeouts and all(timeouts):
            run.deadline = when + sum(timeouts)

    # -- watching -----------------------------------------------------------

    def _poll(self, timeout: float | None) -> None:
        now = time.monotonic()
        if timeout is None:
            deadlines = [r.deadline for r in self._started.values() if r.deadline is not None]
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            if any(r.proc is not None and r.pidfd is None for r in self._started.values()):
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
        for key, _mask in self._selector.select(timeout):
            callback, owner = key.data
            callback(key.fd, owner)
        now = time.monotonic()
        for run in list(self._started.values()):
            if run.returncode is not None:
                continue
            if run.deadline is not None and now >= run.deadline and run.fault is None:
                seconds = run.deadline - (run.started or now)
                run.fault = Fault(kind="timeout", message=f"timed out after {seconds:g} s")
                self._kill(run)
            proc = run.proc
            if proc is not None and run.pidfd is None and proc.poll() is not None:
                self._reap(run)

    def _on_exit(self, fd: int, run: _Run) -> None:
        self._selector.unregister(fd)
        self._reap(run)

    def _reap(self, run: _Run) -> None:
        assert run.proc is not None and run.pid is not None
        # The child is a zombie until we wait: its process group cannot be
        # reused, so killing it now reaches only what the example left behind.
        with contextlib.suppress(OSError):
            os.killpg(run.pid, signal.SIGKILL)
        self._ended(run, run.proc.wait(), time.monotonic())
        self._spawned -= 1
        self._spawn_more()

    def _ended(self, run: _Run, returncode: int, when: float) -> None:
        run.returncode = returncode
        run.ended = when
        self._done.append(run)
        del self._runs[run.ticket]
        self._started.pop(run.ticket, None)

    def _fail(self, run: _Run, fault: Fault) -> None:
        run.fault = run.fault or fault
        self._kill(run)
        self._ended(run, -signal.SIGKILL, time.monotonic())

    def _forget(self, run: _Run) -> None:
        self._runs.pop(run.ticket, None)
        self._started.pop(run.ticket, None)
        self._by_prefix.pop(run.prefix, None)
        self._release(run)

    def _read(self, fd: int) -> bytes | None:
        """What a server pipe has now: ``b""`` at its end (and unwatched), None if nothing."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        if not chunk:
            self._selector.unregister(fd)
        return chunk

    def _on_writable(self, fd: int, server: _Server) -> None:
        self._flush(server)

    def _on_answers(self, fd: int, server: _Server) -> None:
        chunk = self._read(fd)
        if chunk is None:
            return
        if not chunk:
            self._server_died(server)
            return
        server.answers += chunk
        answers, used = unframe(server.answers)
        del server.answers[:used]
        for answer in answers:
            kind = answer["t"]
            if kind == "ready":
                server.ready = True  # its workers report a failed preamble themselves
                continue
            if kind == "started":
                server.started_any = True
            run = self._by_prefix.get(answer["job"])
            if run is None or run.returncode is not None:
                continue
            if kind == "started":
                run.pid = answer["pid"]
                self._mark_started(run, answer["ts"])
                if run.cancelled:
                    self._kill(run)
            elif kind == "exit":
                self._ended(run, os.waitstatus_to_exitcode(answer["status"]), answer["ts"])
            elif kind == "dropped":
                self._forget(run)
            elif kind == "fork_failed":
                self._fail(run, Fault(kind="server", message=f"could not fork: {answer['error']}"))

    def _on_server_err(self, fd: int, server: _Server) -> None:
        chunk = self._read(fd)
        if chunk:
            server.err += chunk
            del server.err[:-TAIL_BYTES]

    def _server_fault(self, server: _Server) -> Fault:
        # Its pipes close as it dies, a moment before it can be waited for:
        # wait (it has been sent SIGKILL), or the status would be missing.
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(timeout=5)
        lines = server.err.decode("utf-8", "backslashreplace").strip().splitlines()
        status = server.proc.returncode
        message = "lost its fork server" + (f" (exit status {status})" if status else "")
        if lines:
            message += f": {lines[-1]}"
        return Fault(kind="server", message=message)

    def _server_died(self, server: _Server) -> None:
        if server.dead:
            return
        server.dead = True
        server.outgoing.clear()
        # Workers it forked but that have not left its process group yet go with it.
        with contextlib.suppress(OSError):
            os.killpg(server.proc.pid, signal.SIGKILL)
        fault = self._server_fault(server)
        # Jobs it had not started go to a new server, as often as servers die,
        # each death at the hands of a job it started (which then fails); a
        # server that dies before it listens, or with no job started (a
        # preamble that kills every server it runs in), fails them all.
        restart = (
            self._servers.get(server.key) is server and server.ready and server.started_any
        )
        if self._servers.get(server.key) is server:
            del self._servers[server.key]
            self._retired.append(server)
        for run in list(self._runs.values()):
            if run.server is not server or run.returncode is not None:
                continue
            if run.pid is not None:
                # Its workers stopped when it died (PR_SET_PDEATHSIG): all they
                # started is still below them, to be ended from here.
                kill_tree(run.pid)
                self._fail(run, fault)
            elif restart:
                self._send_to_server(run)
            else:
                self._fail(run, fault)
        if self._bell is not None:
            # Its slots were freed by the kernel as their holders died, without
            # a ring: ring for each, so that no server waits for nothing.
            with contextlib.suppress(OSError):
                os.write(self._bell[1], b"+" * self._jobs)

    # -- ending ---------------------------------------------------------------

    def _kill(self, run: _Run) -> None:
        if run.pid is None:
            return
        if run.proc is not None:
            # A spawned job: its supervisor (this process's child, so its pid
            # cannot be anyone else's) ends it and everything it started.
            with contextlib.suppress(OSError):
                os.kill(run.pid, signal.SIGTERM)
        else:
            # A forked worker: its server ends what its group leaves.
            with contextlib.suppress(OSError):
                os.killpg(run.pid, signal.SIGKILL)

    def _await(self, run: _Run, deadline: float) -> None:
        """Wait for a spawned job's supervisor to end, until ``deadline``; then
        kill it and all below it from here."""
        assert run.proc is not None
        try:
            run.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_tree(run.proc.pid)
            run.proc.wait()

    def _finish(self, run: _Run) -> JobResult:
        prefix = run.prefix
        events = _read_events(f"{prefix}.ev")
        stdout, stdout_tail, out_size = _read_output(f"{prefix}.out")
        stderr, stderr_tail, err_size = _read_output(f"{prefix}.err")
        if run.fault is None and max(out_size, err_size) >= OUTPUT_LIMIT:
            run.fault = flood_fault()
        assert run.returncode is not None
        # Spawned, failed, and no word that the job's process ended: an example
        # killed the process that started it (see _child._supervise).
        if (run.fault is None and run.returncode != 0 and run.proc is not None
                and not os.path.exists(f"{prefix}.exit")):
            message = f"lost its parent process (exit status {run.returncode})"
            run.fault = Fault(kind="server", message=message)
        self._by_prefix.pop(prefix, None)
        self._release(run)
        fault = run.fault or describe_exit(run.returncode, events, run.job.sandbox)
        started = run.started if run.started is not None else run.ended or 0.0
        return JobResult(
            index=run.job.index,
            events=events,
            fault=fault,
            stdout_tail=stdout_tail,
            stderr_tail=stderr_tail,
            duration=max(0.0, (run.ended or started) - started),
            stdout=stdout,
            stderr=stderr,
            stdout_size=out_size,
            stderr_size=err_size,
        )

    def _release(self, run: _Run) -> None:
        if run.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(run.pidfd)
            with contextlib.suppress(OSError):
                os.close(run.pidfd)
            run.pidfd = None
        # Only a spawned child has its job in a file.
        suffixes = (".ev", ".out", ".err", ".job", ".exit") if run.proc else (".ev", ".out", ".err")
        for suffix in suffixes:
            with contextlib.suppress(OSError):
                os.unlink(run.prefix + suffix)

    def _ask_to_stop(self, server: _Server) -> None:
        """Close the server's standard input: it ends its workers, and all they
        started, and then itself."""
        stdin = server.proc.stdin
        if stdin is None:
            return
        if server.writing:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(stdin)
            server.writing = False
        with contextlib.suppress(OSError):
            stdin.close()

    def _stop_server(self, server: _Server, deadline: float) -> None:
        """Wait for a server asked to stop, until ``deadline``; kill it and all
        below it from here if it does not listen yet (its preamble is still
        running) or does not end in time."""
        proc = server.proc
        if proc.poll() is None:
            try:
                if not server.ready:
                    raise subprocess.TimeoutExpired(proc.args, 0)
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)
                proc.wait()
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

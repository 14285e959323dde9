"""The child side: run a preamble first, then doctest groups, and report as data.

A child executes this file as a script (``python _child.py serve|once PATH``,
or its bytecode) and never imports the package: importing
``sphinxext.isolated_doctest`` would import Sphinx, and the whole point of a
child is that nothing but the interpreter's own start-up has run before the
preamble.  (The parent imports this module for its codec, :func:`frame` and
:func:`unframe`, its exit statuses, and its process handling.)  So, until the
preamble has run, this module uses only what a bare interpreter has already
loaded (``sys``, ``os``, ``marshal``, ``_signal``); ``doctest`` and the rest,
``ctypes`` for ``prctl`` included, are imported after it, or in processes that
run no preamble (see :class:`Native`).

Everything crossing a process boundary is a *frame*: four bytes of length,
little-endian, then a ``marshal``-encoded plain value.  Parent and child are the
same interpreter, so marshal is both safe and the cheapest codec there is.

Two modes share the code below:

``once PREFIX PARENT DISK ROOTS``
    Fork the job's process (see :func:`_supervise`), which reads the frame in
    ``PREFIX.job``, runs its preamble, runs the job and exits.  One fresh
    interpreter per job.
``serve CONFIG``
    Read the frame in the file CONFIG, run the preamble and import the doctest
    machinery once, then read job requests from standard input and fork one
    worker per job, each a copy of the pristine, preambled process.  A worker is
    forked only with a slot that every fork server shares (see :class:`_Server`),
    so that all servers together run at most as many jobs at once as the build
    allows.

and two more serve the build: ``watch FOLDER PARENT`` removes the scratch
folder when the build ends or dies (see :func:`_watch`), and
``probe-network`` says whether a network namespace can be made here.

A job is named by a path prefix: the worker writes ``PREFIX.out`` and
``PREFIX.err`` (its file descriptors 1 and 2) and ``PREFIX.ev``, its results as
frames, all plain files in a memory-backed folder that the parent reads once
the worker has ended.  Writing files rather than pipes means the parent is not
woken for every event, and nothing is lost when a worker dies mid-event.
A resource limit on file size stops a worker that floods its output.  The
parent owns all policy; this side never decides what is a warning or an error.
"""

from __future__ import annotations

# Only modules every interpreter has imported before it runs a script.
import _signal  # type: ignore[import-not-found]  # signal without its enums
import marshal
import os
import sys
import time

# Keep the raw primitives: a preamble may replace ``os.fork`` and friends with
# cooperative versions, and the fork server's own bookkeeping must not depend
# on an event loop it never runs.
_raw_read = os.read
_raw_write = os.write
_raw_waitpid = os.waitpid
# The fork server needs it (Linux 5.3 and later); the parent, which imports
# this module for its codec, does not.
_raw_pidfd_open = getattr(os, "pidfd_open", None)
_raw_killpg = os.killpg
_raw_kill = os.kill
_raw_exit = os._exit
_raw_getpid = os.getpid
_raw_monotonic = time.monotonic

# For the type checker only (``always_true`` in pyproject.toml): importing
# ``typing`` here would load modules before the preamble.
_TYPING = False
if _TYPING:
    from types import ModuleType
    from typing import Any, NoReturn

    Wire = dict[str, Any]  # a plain value as the parent framed it

#: Report text longer than this is cut (head and tail kept) before it is sent.
TEXT_LIMIT = 64 * 1024


EXIT_INTERRUPTED = 120  # a KeyboardInterrupt escaped an example
EXIT_INTERNAL = 121  # the child itself failed; the traceback is on stderr
EXIT_CHANNEL = 122  # an example closed the file descriptor of the events
EXIT_LIMIT = 123  # the group went past a limit of its sandbox (see the "limit" event)
EXIT_SANDBOX = 124  # the group's sandbox could not be set up; the reason is on stderr

#: The events file's descriptor is the lowest free one from here (at most half
#: the process's limit): far above what examples open, so that one which
#: closes every descriptor (as a daemon does) is reported as such, and one
#: that opens files never gets ours back and writes into it.
HIGH_FD = 1000


def frame(value: Any) -> bytes:
    """``value`` as one frame: its length, then its marshal encoding."""
    data = marshal.dumps(value)
    return len(data).to_bytes(4, "little") + data


def unframe(data: bytes | bytearray) -> tuple[list[Any], int]:
    """The whole frames at the start of ``data``, and how many bytes they took.

    A frame cut short (its writer died mid-write, or the rest is yet to come)
    ends the list.
    """
    values = []
    start = 0
    while len(data) - start >= 4:
        end = start + 4 + int.from_bytes(data[start : start + 4], "little")
        if end > len(data):
            break
        try:
            values.append(marshal.loads(data[start + 4 : end]))
        except (EOFError, ValueError, TypeError):
            break
        start = end
    return values, start


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[_raw_write(fd, view) :]


def _read_frame_file(path: str) -> Any:
    with open(path, "rb") as f:
        data = f.read()
    return marshal.loads(data[4:])


def _prepare(setup: Wire) -> None:
    """What the reference builder's examples find in its process: its
    ``sys.path`` and ``sys.argv`` (see ``RunSettings.child``)."""
    sys.path[:] = setup["sys_path"]
    if setup["argv"]:
        sys.argv[:] = setup["argv"]
    _Machinery.compile_hook = setup["compile_hook"]


def _run_preamble(preamble: Wire) -> str | None:
    """Run the preamble in its own namespace; return a traceback text or None.

    Its code is compiled as if it stood at the line that sets it, in that
    file, so that its traceback points there (and shows that line); the
    traceback has only its own frames, none of this module's.
    """
    source = preamble["source"]
    if not source:
        return None
    text = "\n" * max(0, preamble["line"] - 1) + source
    path = preamble["path"] or "<preamble>"
    try:
        exec(compile(text, path, "exec"), {"__name__": "__preamble__"})
    except BaseException as exc:
        import linecache
        import traceback

        # Its lines as they ran, rather than the file's (where the first is,
        # say, ``:preamble: raise ...``, and the carets would not line up).
        lines = text.splitlines(True)
        linecache.cache[path] = (len(text), None, lines, path)
        if isinstance(exc, SyntaxError) and exc.filename == path and exc.lineno:
            # Read from the file by the compiler: the line as it ran instead.
            exc.text = lines[exc.lineno - 1] if exc.lineno <= len(lines) else None
        # This function's frame is first: drop it.  A SyntaxError from
        # compile() has no other, and is shown as the error alone.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        return "".join(traceback.format_exception(type(exc), exc, tb))
    return None


class _ChannelClosed(BaseException):
    """An example closed the events file's descriptor: nothing more can be said."""


class _Channel:
    """Frames on the job's ``ev`` file, one write each (an append is atomic).

    Only the process that runs the job writes them: a process an example
    forked, and that goes on running the examples instead of exiting (as
    ``os.fork()`` without ``os._exit`` does), would report them a second time.
    It leaves instead, at its first word.
    """

    fd = -1
    owner = -1

    @classmethod
    def emit(cls, kind: str, **fields: Any) -> None:
        if _raw_getpid() != cls.owner:
            _raw_exit(0)
        fields["t"] = kind
        try:
            _write_all(cls.fd, frame(fields))
        except OSError as exc:
            import errno

            if exc.errno == errno.EBADF:
                raise _ChannelClosed from None
            raise


def _cut(text: str) -> str:
    if len(text) <= TEXT_LIMIT:
        return text
    head, tail = text[: TEXT_LIMIT // 2], text[-TEXT_LIMIT // 8 :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[... {cut} characters cut ...]\n{tail}"


# ---------------------------------------------------------------------------
# Running one job: the same steps as sphinx.ext.doctest's test_group.


class _OwnCompile:
    """The compile hook, where sphinx.ext.doctest's own cannot be rebuilt."""

    type = "single"

    def compile(self, code: str, name: str, type: str, flags: int, dont_inherit: bool) -> Any:
        return compile(code, name, self.type, flags, dont_inherit)


def _reference_compile(hook: list[Any]) -> Any:
    """sphinx.ext.doctest's compile hook, compiled from its own source at its
    own file and line, on a stand-in for its builder.

    ``doctest`` compiles every example in ``'single'`` mode, which cannot take
    multi-statement setup or ``testcode`` blocks; the reference builder swaps
    ``doctest.compile`` for its method, which reads the mode from the builder
    (``self.type``).  Its frame shows in the traceback of an example that does
    not compile: rebuilt this way, that frame is the reference's, line for
    line, and no frame of this module appears.
    """
    path, first, source = hook
    if first < 2:
        raise ValueError("no line for the stand-in class")
    import __future__

    text = "\n" * (first - 2) + "class DocTestBuilder:\n" + source
    namespace: dict[str, Any] = {"__name__": "sphinx.ext.doctest"}
    flags = __future__.annotations.compiler_flag  # as the reference module has
    exec(compile(text, path, "exec", flags, True), namespace)
    builder = namespace["DocTestBuilder"]()
    builder.compile  # noqa: B018  (it must be there)
    return builder


def _install_compile(doctest: ModuleType, hook: list[Any] | None) -> Any:
    """Route doctest's compile through a hook whose ``type`` is the mode; return it."""
    builder: Any = None
    if hook:
        try:
            builder = _reference_compile(hook)
        except Exception:
            builder = None
    if builder is None:
        builder = _OwnCompile()
    builder.type = "single"
    doctest.compile = builder.compile  # type: ignore[attr-defined]
    # Python 3.13 colours a failure's divider when stderr is a terminal or
    # FORCE_COLOR is set: never in a report that goes to a file.
    if hasattr(doctest, "can_colorize"):
        doctest.can_colorize = lambda: False  # type: ignore[attr-defined]
    if doctest._OutputRedirectingPdb is not _LazyDebugger:
        _LazyDebugger.real = doctest._OutputRedirectingPdb
        doctest._OutputRedirectingPdb = _LazyDebugger  # type: ignore[attr-defined]
    return builder


class _LazyDebugger:
    """doctest builds a Pdb for every test it runs, for the rare example that
    calls ``pdb.set_trace()``; build it only then (a child has no terminal)."""

    real: Any = None

    def __init__(self, out: Any) -> None:
        self._out = out
        self._pdb: Any = None

    def reset(self) -> None:
        if self._pdb is not None:
            self._pdb.reset()

    def set_continue(self) -> None:
        if self._pdb is not None:
            self._pdb.set_continue()

    def set_trace(self, frame: Any = None) -> Any:
        if self._pdb is None:
            self._pdb = self.real(self._out)
        return self._pdb.set_trace(frame or sys._getframe(1))


#: Python 3.13's doctest counts a skipped example as tried.
_COUNTS_SKIPS = sys.version_info >= (3, 13)


def _short(text: str) -> str:
    """A line of output, for a short cause: its first line, cut."""
    lines = text.strip().splitlines()
    if not lines:
        return "nothing"
    first = lines[0] if len(lines[0]) <= 60 else lines[0][:57] + "..."
    return first + (" ..." if len(lines) > 1 else "")


def _make_runner_class(doctest: Any) -> Any:
    class Runner(doctest.DocTestRunner):  # type: ignore[misc]
        """doctest's runner, as sphinx.ext.doctest's, telling the parent what
        it starts and why an example failed."""

        phase = "test"
        _started = 0

        def run(
            self, test: Any, compileflags: Any = None, out: Any = None, clear_globs: bool = True
        ) -> Any:
            self._started = 0
            return super().run(test, compileflags, out, clear_globs)

        def report_start(self, out: Any, test: Any, example: Any) -> None:
            self._started += 1
            if _COUNTS_SKIPS:
                tried = 1 + next(i for i, e in enumerate(test.examples) if e is example)
            else:
                tried = self._started
            # The line of doctest's own report header for this example.
            if test.lineno is not None and example.lineno is not None:
                line: Any = test.lineno + example.lineno + 1
            else:
                line = "?"
            _Channel.emit(
                "start", phase=self.phase, group=test.name, filename=test.filename,
                line=line, exact=getattr(example, "exact_line", None),
                source=_cut(example.source), tried=tried,
            )
            super().report_start(out, test, example)

        def report_failure(self, out: Any, test: Any, example: Any, got: str) -> None:
            if example.exc_msg is not None and got.startswith("Traceback"):
                cause = f"expected {_short(example.exc_msg)}, got {_short(got.splitlines()[-1])}"
            else:
                cause = f"expected {_short(example.want)}, got {_short(got)}"
            _Channel.emit("failure", cause=cause)
            super().report_failure(out, test, example, got)

        def report_unexpected_exception(
            self, out: Any, test: Any, example: Any, exc_info: Any
        ) -> None:
            import traceback

            raised = traceback.format_exception_only(exc_info[0], exc_info[1])[-1]
            _Channel.emit("failure", cause=f"raised {_short(raised)}")
            super().report_unexpected_exception(out, test, example, exc_info)

        def _DocTestRunner__patched_linecache_getlines(
            self, filename: str, module_globals: Any = None
        ) -> Any:
            # sphinx.ext.doctest's: the blocks of a group are tests of one
            # name, so a frame from an earlier block (a function it defined)
            # may name an example this test does not have.
            m = self._DocTestRunner__LINECACHE_FILENAME_RE.match(filename)
            if m and m.group("name") == self.test.name:
                try:
                    example = self.test.examples[int(m.group("examplenum"))]
                except IndexError:
                    pass
                else:
                    return example.source.splitlines(True)
            return self.save_linecache_getlines(filename, module_globals)

    return Runner


def _skipped(block: Wire, global_setup: str, global_cleanup: str) -> bool:
    condition = block.get("skipif")
    if not condition:
        return False
    context: dict[str, Any] = {}
    if global_setup:
        exec(global_setup, context)
    should_skip = eval(condition, context)
    if global_cleanup:
        exec(global_cleanup, context)
    return bool(should_skip)


class _Group:
    """sphinx.ext.doctest's TestGroup, for blocks that are plain dicts."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.setup: list[Wire] = []
        self.tests: list[Any] = []
        self.cleanup: list[Wire] = []

    def add(self, block: Wire, prepend: bool = False) -> None:
        kind = block["kind"]
        if kind == "testsetup":
            if prepend:
                self.setup.insert(0, block)
            else:
                self.setup.append(block)
        elif kind == "testcleanup":
            self.cleanup.append(block)
        elif kind == "doctest":
            self.tests.append([block])
        elif kind == "testcode":
            self.tests.append((block, None))
        elif kind == "testoutput" and self.tests and len(self.tests[-1]) == 2:
            self.tests[-1] = [self.tests[-1][0], block]


def _options(block: Wire) -> dict[int, bool]:
    return {int(k): v for k, v in block.get("options", {}).items()}


def _build_group(spec: Wire, job: Wire) -> _Group | None:
    """Apply ``:skipif:`` and the reference builder's grouping; None if empty."""
    group = _Group(spec["name"])
    present = False
    for entry in spec["blocks"]:
        if _skipped(entry, job["global_setup"], job["global_cleanup"]):
            continue
        if not entry.get("star"):
            present = True
        group.add(entry)
    if not present:
        return None
    if job["global_setup"]:
        group.add(
            {"kind": "testsetup", "code": job["global_setup"], "filename": "<global_setup>",
             "lineno": 0},
            prepend=True,
        )
    if job["global_cleanup"]:
        group.add(
            {"kind": "testcleanup", "code": job["global_cleanup"],
             "filename": "<global_cleanup>", "lineno": 0}
        )
    return group


def _written() -> list[int | None]:
    """How much the job's stdout and stderr hold now, what the interpreter
    buffers included: where the parent cuts them, to show each part beside
    the report it goes with.  (A stream an example put in their place is not
    flushed: that is its own code, to run when it would anyway.)"""
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    sizes: list[int | None] = []
    for fd in (1, 2):
        try:
            sizes.append(os.fstat(fd).st_size)
        except OSError:
            sizes.append(None)
    return sizes


def _run_group(doctest: Any, runner_for: Any, group: _Group, job: Wire) -> bool:
    """Run one group; return False if it failed (for fail-fast)."""
    parser = _Machinery.parser
    hook = _Machinery.compile_builder
    ns: dict[str, Any] = {}
    fail_fast = job["fail_fast"]
    counts_skips = _COUNTS_SKIPS

    def out(text: str) -> None:
        _Channel.emit("out", text=_cut(text), written=_written())

    def run(runner: Any, test: Any, kind: str) -> bool:
        old_f, old_t = runner.failures, runner.tries
        old_s = runner.skips if counts_skips else 0
        test.globs = ns
        runner.run(test, out=out, clear_globs=False)
        _Channel.emit(
            "record", runner=kind, name=test.name,
            failures=runner.failures - old_f, tries=runner.tries - old_t,
            skips=(runner.skips if counts_skips else 0) - old_s,
        )
        return bool(runner.failures == old_f)

    def run_setup_cleanup(runner_for: Any, blocks: list[Wire], what: str) -> bool:
        if not blocks:
            return True
        runner = runner_for(what)
        examples = []
        for b in blocks:
            example = doctest.Example(b["code"], "", lineno=b["lineno"])
            example.exact_line = b.get("source_line")
            examples.append(example)
        test = doctest.DocTest(
            examples, {}, f"{group.name} ({what} code)", blocks[0]["filename"], 0, None
        )
        hook.type = "exec"  # the snippet may contain multiple statements
        return run(runner, test, what)

    _Channel.emit("group", name=group.name, ts=_raw_monotonic(), written=_written())
    if not run_setup_cleanup(runner_for, group.setup, "setup"):
        return False

    success = True
    for code in group.tests:
        if len(code) == 1:
            block = code[0]
            try:
                test = parser.get_doctest(
                    block["code"], {}, group.name, block["filename"], block["lineno"]
                )
            except Exception:
                _Channel.emit(
                    "warning", text=f"ignoring invalid doctest code: {block['code']!r}",
                    filename=block["filename"], lineno=block["lineno"],
                )
                continue
            if not test.examples:
                continue
            first = block.get("source_line")
            for example in test.examples:
                new_opt = _options(block)
                new_opt.update(example.options)
                example.options = new_opt
                example.exact_line = None if first is None else first + example.lineno
            hook.type = "single"
        else:
            block, output_block = code
            output = output_block["code"] if output_block else ""
            options = _options(output_block) if output_block else {}
            options[doctest.DONT_ACCEPT_BLANKLINE] = True
            m = parser._EXCEPTION_RE.match(output)
            exc_msg = m.group("msg") if m else None
            example = doctest.Example(
                block["code"], output, exc_msg=exc_msg, lineno=block["lineno"], options=options
            )
            example.exact_line = block.get("source_line")
            test = doctest.DocTest(
                [example], {}, group.name, block["filename"], block["lineno"], None
            )
            hook.type = "exec"
        if not run(runner_for("test"), test, "test"):
            success = False
            if fail_fast:
                break

    if not run_setup_cleanup(runner_for, group.cleanup, "cleanup"):
        return False
    return success


class _Machinery:
    """What every job needs, set up once: in the fork server before it forks
    (so that workers share it instead of each building it), or in ``once``."""

    doctest: Any = None
    runner_class: Any = None
    parser: Any = None
    resource: Any = None
    #: Where sphinx.ext.doctest's compile hook is (see _reference_compile).
    compile_hook: list[Any] | None = None
    #: The object whose ``compile`` doctest calls; its ``type`` is the mode.
    compile_builder: Any = None

    @classmethod
    def load(cls) -> None:
        if cls.doctest is not None:
            return
        import doctest
        import resource

        _HighFd.load()
        cls.compile_builder = _install_compile(doctest, cls.compile_hook)
        cls.doctest, cls.resource = doctest, resource
        cls.runner_class = _limited(_make_runner_class(doctest))
        cls.parser = doctest.DocTestParser()


class _Runners:
    """A group's runner for each phase, made when first needed."""

    def __init__(self, runner_class: Any, flags: int) -> None:
        self._class = runner_class
        self._flags = flags
        self._made: dict[str, Any] = {}
        self._fakeout: Any = None

    def __call__(self, phase: str) -> Any:
        runner = self._made.get(phase)
        if runner is None:
            runner = self._made[phase] = self._class(verbose=False, optionflags=self._flags)
            runner.phase = phase
            # As the reference builder's runners, all capture into one buffer.
            if self._fakeout is None:
                self._fakeout = runner._fakeout
            else:
                runner._fakeout = self._fakeout
        return runner


def _run_job(job: Wire) -> None:
    _Machinery.load()
    doctest, runner_class = _Machinery.doctest, _Machinery.runner_class
    flags = job["optionflags"]

    for spec in job["groups"]:
        group = _build_group(spec, job)
        if group is None:
            _Channel.emit("absent", name=spec["name"])
            continue
        ok = _run_group(doctest, _Runners(runner_class, flags), group, job)
        _Limits.check_disk()  # for its last example
        _Channel.emit("group_done", name=group.name, ok=ok, ts=_raw_monotonic(),
                      written=_written())
        if not ok and job["fail_fast"]:
            break


def _limit_output(limit: int) -> None:
    """Stop the process (and what it forks) once it writes ``limit`` bytes to a file."""
    if not limit:
        return
    _Machinery.load()
    resource = _Machinery.resource
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    # Python ignores SIGXFSZ, so a write past the limit would only raise
    # OSError and the group would go on; the default action stops the child
    # in the example that flooded, where the report then places the flood.
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)


def _open_job_files(prefix: str) -> int:
    """Point fds 0, 1 and 2 at /dev/null and the job's files; return the ev fd
    (see :data:`HIGH_FD`)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    for name, target in (("out", 1), ("err", 2)):
        fd = os.open(f"{prefix}.{name}", flags, 0o600)
        os.dup2(fd, target)
        os.close(fd)
    return _high_fd(os.open(f"{prefix}.ev", flags, 0o600))


def _high_fd(fd: int) -> int:
    """``fd`` moved to the lowest free descriptor from :data:`HIGH_FD`, or from
    half the process's limit if that is lower."""
    if _HighFd.fcntl is None:
        _HighFd.load()
    high: int = _HighFd.fcntl(fd, _HighFd.command, _HighFd.floor)
    os.close(fd)
    return high


class _HighFd:
    """What :func:`_high_fd` needs, found once (by the fork server, before it forks)."""

    fcntl: Any = None
    command = 0
    floor = HIGH_FD

    @classmethod
    def load(cls) -> None:
        import fcntl
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            cls.floor = min(HIGH_FD, soft // 2)
        cls.fcntl, cls.command = fcntl.fcntl, fcntl.F_DUPFD_CLOEXEC


# ---------------------------------------------------------------------------
# The sandbox: limits, and a network of its own, that the process running a
# job enters after the preamble and before the first example.

#: What an example that tries to leave loopback is told (see _guard_network).
NETWORK_OFF = "network is off for this group (isolated_doctest_sandbox)"


class _LimitReached(BaseException):
    """The group went past a limit of its sandbox: it stops here, saying which."""

    def __init__(self, what: str, limit: float) -> None:
        super().__init__(what, limit)
        self.what = what
        self.limit = limit


class _Limits:
    """The running job's memory and disk limits in bytes, for the runner (0: none)."""

    memory = 0
    disk = 0

    @classmethod
    def check_disk(cls) -> None:
        """Stop the group if it has written more than its ``disk`` limit: checked
        before each example, for the one before (what its process wrote, and
        what its children it has waited for wrote).  Its supervisor checks all
        its processes as they run, every DISK_TICK seconds."""
        if cls.disk and _writes([_raw_getpid()]) > cls.disk:
            raise _LimitReached("disk", cls.disk)


def _limited(runner_class: Any) -> Any:
    """``runner_class``, for which a MemoryError under a memory limit is the limit
    reached: the group's fault at that example, not the example's failure; and
    which checks the disk limit before each example."""

    class Runner(runner_class):  # type: ignore[misc]
        def report_start(self, out: Any, test: Any, example: Any) -> None:
            _Limits.check_disk()
            super().report_start(out, test, example)

        def report_unexpected_exception(
            self, out: Any, test: Any, example: Any, exc_info: Any
        ) -> None:
            if _Limits.memory and issubclass(exc_info[0], MemoryError):
                raise _LimitReached("memory", _Limits.memory)
            super().report_unexpected_exception(out, test, example, exc_info)

    return Runner


def _enter_sandbox(sandbox: Wire, *, own_network: bool) -> None:
    """Apply the job's ``sandbox`` to this process and to what it will start.

    ``own_network``: move into a network namespace of its own first (a forked
    worker; a spawned child was started in one).
    """
    resource = _Machinery.resource
    if sandbox.get("network") is False:
        if own_network:
            Native.own_network()
        _guard_network()
    memory = sandbox.get("memory")
    if memory:
        # The data segment and private writable mappings: what the process has
        # taken, not the address space it merely reserved (as thread stacks do).
        _set_limit(resource.RLIMIT_DATA, memory)
        _Limits.memory = memory
    cpu = sandbox.get("cpu")
    if cpu:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = -int(-(usage.ru_utime + usage.ru_stime + cpu) // 1)  # counted from now
        # SIGXCPU at the soft limit, SIGKILL a second later if it is ignored.
        _set_limit(resource.RLIMIT_CPU, soft, soft + 1)
    disk = sandbox.get("disk")
    if disk:
        # No one file may take more than the whole budget; the total is checked
        # between examples (_Limits.check_disk) and, as they run, by the
        # process above (_over_disk).
        _set_limit(resource.RLIMIT_FSIZE, disk)
        _Limits.disk = disk


def _set_limit(which: int, soft: int, hard: int | None = None) -> None:
    """Lower the resource limit ``which`` to ``soft`` (and ``hard``), never raise it."""
    resource = _Machinery.resource
    infinity = resource.RLIM_INFINITY
    old_soft, old_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if old_hard != infinity:
        hard = min(hard, old_hard)
    if old_soft != infinity:
        soft = min(soft, old_soft)
    resource.setrlimit(which, (min(soft, hard), hard))


def _guard_network() -> None:
    """Make a Python-level attempt to reach past loopback fail at once, with
    :data:`NETWORK_OFF` as its message.

    The network namespace is what stops the group (subprocesses and C code
    included); this only says why, where a bare "Network is unreachable" or a
    failed name lookup would leave the reader guessing.
    """
    import errno
    import socket

    local = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
    inet_pton = socket.inet_pton

    def numeric(host: str) -> bytes | None:
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                return inet_pton(family, host)
            except (OSError, ValueError):
                continue
        return None

    def loopback(packed: bytes) -> bool:
        if len(packed) == 4:
            return packed[0] == 127
        # ::1, or an IPv4 loopback address mapped into IPv6.
        return packed == bytes(15) + b"\1" or (
            packed[:12] == bytes(10) + b"\xff\xff" and packed[12] == 127
        )

    def allowed(host: Any, *, names: bool) -> bool:
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str):
            return True  # not an internet address (AF_UNIX, AF_NETLINK...)
        host = host.partition("%")[0].lower()
        if host in local:
            return True
        packed = numeric(host)
        if packed is None:
            return False  # a name, which only the network could resolve
        return names or loopback(packed)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.getaddrinfo":
            # A numeric address needs no lookup: connect() judges it.
            if args[0] is not None and not allowed(args[0], names=True):
                raise socket.gaierror(socket.EAI_AGAIN, NETWORK_OFF)
        elif event in {"socket.connect", "socket.sendto"}:
            address = args[1]
            if isinstance(address, tuple) and address and not allowed(address[0], names=False):
                raise OSError(errno.ENETUNREACH, NETWORK_OFF)

    sys.addaudithook(hook)


# ---------------------------------------------------------------------------
# Processes: what no example escapes, and what no kill leaves behind.
#
# Each job runs in a child subreaper (PR_SET_CHILD_SUBREAPER: a forked worker
# makes itself one) or under one (a spawned job's supervisor), so a process an
# example starts stays below it even if it leaves its process group and
# session (setsid, a double fork): when the job ends, whatever is left below
# is found by parent pid, killed and reaped.  Fork servers are subreapers too,
# for the workers that die before they can do it themselves.  And every
# process that supervises others learns of its parent's death (a pidfd, or
# PR_SET_PDEATHSIG) and then ends what it supervises, so that nothing
# outlives a sphinx-build killed with SIGKILL.

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SIGKILL = 9
SIGSTOP = 19


class Native:
    """prctl(2) and unshare(2), through ctypes (``os`` has no prctl, and its
    ``unshare`` is Python 3.12 and later).

    Importing ctypes would show in the preamble's ``sys.modules``, so this is
    loaded only in processes that run no preamble (a spawned job's supervisor,
    sphinx-build's own side, the child of sphinx-build about to become a fork
    server) or after the preamble (a fork server and the workers it forks).
    """

    prctl_fn: Any = None
    unshare_fn: Any = None
    errno_fn: Any = None
    loaded = False

    @classmethod
    def load(cls) -> bool:
        """Whether prctl can be called here (Linux)."""
        if not cls.loaded:
            cls.loaded = True
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                prctl = libc.prctl
                unshare = libc.unshare
            except (ImportError, OSError, AttributeError):
                return False
            prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]
            prctl.restype = ctypes.c_int
            unshare.argtypes = [ctypes.c_int]
            unshare.restype = ctypes.c_int
            cls.prctl_fn, cls.unshare_fn, cls.errno_fn = prctl, unshare, ctypes.get_errno
        return cls.prctl_fn is not None

    @classmethod
    def _check(cls, result: int, what: str) -> None:
        if result != 0:
            number = cls.errno_fn()
            raise OSError(number, f"{what}: {os.strerror(number)}")

    @classmethod
    def prctl(cls, option: int, value: int) -> None:
        if not cls.load():
            raise OSError(38, "prctl: not available on this system")
        cls._check(cls.prctl_fn(option, value, 0, 0, 0), "prctl")

    @classmethod
    def unshare(cls, flags: int) -> None:
        unshare = getattr(os, "unshare", None)
        if unshare is not None:
            try:
                unshare(flags)
            except OSError as exc:  # said as through ctypes, whatever the version
                raise OSError(exc.errno, f"unshare: {exc.strerror}") from None
        elif cls.load():
            cls._check(cls.unshare_fn(flags), "unshare")
        else:
            raise OSError(38, "unshare: not available on this system")

    @classmethod
    def own_network(cls) -> None:
        """Move this process into a network namespace of its own, loopback up.

        As root, a network namespace; as anyone else, a user namespace too (in
        which this process has the right to bring loopback up), where the user
        and group are mapped to themselves, so that examples see the same ids.
        """
        import fcntl
        import socket
        import struct

        uid, gid = os.getuid(), os.getgid()
        user = os.geteuid() != 0
        cls.unshare(CLONE_NEWNET | (CLONE_NEWUSER if user else 0))
        if user:
            for name, text in (
                ("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1"),
            ):
                fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            up = 0x1 | 0x8 | 0x40  # IFF_UP | IFF_LOOPBACK | IFF_RUNNING
            fcntl.ioctl(sock, 0x8914, struct.pack("16sH", b"lo", up))  # SIOCSIFFLAGS


def contain(*, parent: int, death_signal: int) -> bool:
    """Make this process a child subreaper that gets ``death_signal`` when its
    parent dies; return whether ``parent`` is still that parent (if it died
    first, the signal will never come)."""
    if Native.load():
        Native.prctl(PR_SET_CHILD_SUBREAPER, 1)
        Native.prctl(PR_SET_PDEATHSIG, death_signal)
    return os.getppid() == parent


def _stat_fields(pid: int, count: int = 4) -> list[bytes] | None:
    """The first ``count`` fields of /proc/PID/stat after the command name
    (state, parent, process group, session, ...)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data[data.rfind(b")") + 2 :].split(b" ", count)[:count]


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (see record_root)."""
    fields = _stat_fields(pid, 20)
    return None if fields is None or len(fields) < 20 else int(fields[19])


#: What a line of the build's list of roots (see _watch) says a process is.
ROOT_JOB = "job"  # it runs a job's examples
ROOT_LEADER = "leader"  # a fork server or a spawned job's supervisor: it may list more
#: Clock ticks (as /proc counts a process's start) per second.
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: A process listed in the roots is the one found under its pid if it started
#: at most this many ticks before it was listed: a pid taken again that soon
#: would need every other pid to have been used in between.
ROOT_SLACK = _TICKS


def record_root(path: str | int, pid: int, kind: str) -> None:
    """Add ``pid`` (this process, or one just started) to the build's list of
    roots (see _watch), with the time it was listed: an append of one line, so
    any number of writers may share the file (named, or already open).

    The time comes from the clock, not from /proc: a forked worker lists
    itself, and reading and parsing its stat would copy pages it shares with
    its server, for no more than a tick of precision.
    """
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is None:
        return  # not Linux: no /proc to find it in later either
    now = time.clock_gettime_ns(clock) * _TICKS // 1_000_000_000
    line = b"%s %d %d\n" % (kind.encode(), pid, now)
    try:
        fd = path if isinstance(path, int) else os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError:
        return
    try:
        os.write(fd, line)
    except OSError:
        pass
    finally:
        if not isinstance(path, int):
            os.close(fd)


def _listed(pid: int, listed: int) -> bool:
    """Whether the process now under ``pid`` is the one listed at ``listed``."""
    start = _start_time(pid)
    return start is not None and listed - ROOT_SLACK <= start <= listed


def _parents() -> dict[int, int]:
    """pid -> parent pid, for every process (none where there is no /proc)."""
    table: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields is not None:
                table[int(name)] = int(fields[1])
    return table


def _children(pid: int) -> list[int]:
    """The children of ``pid``, zombies included."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        try:
            fd = os.open(f"/proc/{pid}/task/{task}/children", os.O_RDONLY)
        except FileNotFoundError:
            break  # a kernel without CONFIG_PROC_CHILDREN: read the whole table
        except OSError:
            continue
        try:
            found += map(int, os.read(fd, 1 << 20).split())
        finally:
            os.close(fd)
    else:
        return found
    return [child for child, ppid in _parents().items() if ppid == pid]


def _descendants(root: int) -> list[int]:
    """Every process below ``root``, zombies included, parents before children."""
    table = _parents()
    below: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        below.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for child in below.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in {b"Z", b"X"}


def end_children(keep: Any = ()) -> None:
    """Kill and reap every child of this process but those in ``keep``, then,
    as a subreaper, every process that becomes one as they die, until none is
    left."""
    me = os.getpid()
    while True:
        doomed = [pid for pid in _children(me) if pid not in keep]
        if not doomed:
            return
        for pid in doomed:
            try:
                _raw_kill(pid, SIGKILL)
            except OSError:
                pass
        for pid in doomed:
            try:
                _raw_waitpid(pid, 0)
            except ChildProcessError:
                pass


def _end_own_children() -> None:
    """At the end of a job run by a subreaper: reap what ended, kill what did not."""
    try:
        while _raw_waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        return  # no child at all, so nothing at all below this process
    end_children()


def kill_tree(root: int, *, seconds: float = 10.0) -> None:
    """Kill ``root``, a child subreaper that is not this process's child, and
    everything below it.

    ``root`` is stopped first: it then cannot exit, so whatever is orphaned
    below it as the others die stays below it, where the next round finds it.
    """
    try:
        _raw_kill(root, SIGSTOP)
    except OSError:
        return
    deadline = _raw_monotonic() + seconds
    while _raw_monotonic() < deadline:
        live = [pid for pid in _descendants(root) if _running(pid)]
        if not live:
            break
        for pid in live:
            try:
                _raw_kill(pid, SIGKILL)
            except OSError:
                pass
        while _raw_monotonic() < deadline and any(map(_running, live)):
            time.sleep(0.001)
    try:
        _raw_kill(root, SIGKILL)
    except OSError:
        pass


def _writes(pids: Any) -> int:
    """Bytes written by ``pids`` (what /proc/PID/io counts as ``wchar``: write(2)
    and the like, including what their reaped children wrote)."""
    total = 0
    for pid in pids:
        try:
            fd = os.open(f"/proc/{pid}/io", os.O_RDONLY)
        except OSError:
            continue  # gone, or not ours to read (a set-user-ID program)
        try:
            for line in os.read(fd, 4096).splitlines():
                if line.startswith(b"wchar:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
        finally:
            os.close(fd)
    return total


#: How often the total a group has written is checked against its ``disk`` limit.
DISK_TICK = 0.05


def _over_disk(prefix: str, root: int, limit: int, *, with_root: bool) -> bool:
    """Whether the processes of ``root``'s job wrote more than ``limit`` bytes;
    if so, say so in the job's events (its process, about to be killed, cannot)."""
    pids = _descendants(root)
    if with_root:
        pids.append(root)
    if _writes(pids) <= limit:
        return False
    try:
        fd = os.open(f"{prefix}.ev", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        return True
    try:
        _write_all(fd, frame({"t": "limit", "what": "disk", "limit": limit}))
    except OSError:
        pass
    finally:
        os.close(fd)
    return True


# ---------------------------------------------------------------------------
# The process that runs a job.


def _is_ours(tb: Any) -> bool:
    # This module's code, by the name it was compiled under: run from the
    # bytecode the build writes (see _pool.child_program), __file__ names that.
    return bool(tb.tb_frame.f_code.co_filename == _is_ours.__code__.co_filename)


def _work(
    prefix: str,
    job: Wire,
    preamble_error: str | None,
    *,
    own_network: bool = False,
    leaving: Any = None,
) -> NoReturn:
    """Run a job in this process, report, and leave without running atexit hooks.

    ``leaving`` is called last, whatever happened (a worker ends what its
    examples left running there).
    """
    status = 0
    _Channel.owner = _raw_getpid()
    try:
        _Channel.fd = _open_job_files(prefix)
    except BaseException:
        # No events file: the traceback on stderr is all the parent gets.
        import traceback

        traceback.print_exc()
        _raw_exit(EXIT_INTERNAL)
    try:
        if preamble_error is not None:
            _Channel.emit("preamble_error", traceback=_cut(preamble_error))
        else:
            sandbox = job.get("sandbox")
            if sandbox:
                try:
                    _enter_sandbox(sandbox, own_network=own_network)
                except Exception as exc:
                    status = EXIT_SANDBOX
                    _Channel.emit("sandbox_error", error=str(exc))
                    raise
            _run_job(job)
        _Channel.emit("done")
    except _ChannelClosed:
        status = EXIT_CHANNEL
    except _LimitReached as exc:
        status = EXIT_LIMIT
        _Channel.emit("limit", what=exc.what, limit=exc.limit)
    except KeyboardInterrupt:
        import traceback

        status = EXIT_INTERRUPTED  # even if the events file is gone too
        _Channel.emit("interrupted", traceback=_cut(traceback.format_exc()))
    except MemoryError:
        if _Limits.memory:
            status = EXIT_LIMIT
            _Channel.emit("limit", what="memory", limit=_Limits.memory)
        else:
            import traceback

            traceback.print_exc()
            status = EXIT_INTERNAL
    except BaseException as exc:
        if status != EXIT_SANDBOX:
            import traceback

            # From where it left this module: doctest's frames, not ours.
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None and _is_ours(tb):
                tb = tb.tb_next
            traceback.print_exception(type(exc), exc, tb)
            status = EXIT_INTERNAL
    finally:
        # Examples may leave threads or greenlets behind; the parent has what it
        # needs, so exit at once rather than wait for them at shutdown.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        if leaving is not None and _raw_getpid() == _Channel.owner:
            leaving()
        _raw_exit(status)


# ---------------------------------------------------------------------------
# ``once``: a spawned job, under a supervisor.


def _supervise(prefix: str, parent: int, disk: int, roots: str) -> None:
    """Fork the process that runs the job, watch it from here, end as it did.

    sphinx-build starts this process itself, so it is what the job's examples
    would see as their parent (``os.getppid()``): an example that signals or
    kills its parent must reach a process of the job, never the build.  Only
    the new process returns from here.

    This process runs no preamble, so it may import what it likes once it has
    forked: it becomes a child subreaper, which adopts whatever the job's
    process orphans, before that process goes past the point where it could
    orphan anything; and it ends the whole job when sphinx-build dies
    (PR_SET_PDEATHSIG) or asks it to (SIGTERM), or when the job writes more
    than ``disk`` bytes (0: no limit).  The job's process lists itself in
    ``roots`` (see _watch) before it goes on.  Once the job's process has
    ended and whatever it left is killed, it leaves ``PREFIX.exit`` (the
    parent's sign that its status is the job's own) and ends with the same
    status; a death without that file is this process lost.
    """
    go_in, go_out = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_out)
        go = _raw_read(go_in, 1)
        os.close(go_in)
        if not go:  # the supervisor is gone: no one would ever end this job
            _raw_exit(EXIT_INTERNAL)
        record_root(roots, os.getpid(), ROOT_JOB)
        return
    os.close(go_in)
    if not hasattr(_signal, "sigtimedwait"):  # not Linux: no death signal to wait for either
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)  # die of it, not print it
        _raw_write(go_out, b"+")
        os.close(go_out)
        _mirror(prefix, _raw_waitpid(pid, 0)[1])
    stops = {_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP}
    watched = {_signal.SIGCHLD, *stops}
    _signal.pthread_sigmask(_signal.SIG_BLOCK, watched)
    try:
        stop = 0 if contain(parent=parent, death_signal=_signal.SIGTERM) else _signal.SIGTERM
    except OSError:
        stop = 0  # no subreaper here: the job's process group is all there is
    if not stop:  # else sphinx-build is gone already, and the job's process ends unstarted
        _raw_write(go_out, b"+")
    os.close(go_out)
    status = None
    next_check = _raw_monotonic() + DISK_TICK
    while not stop:
        ended, status = _raw_waitpid(pid, os.WNOHANG)
        if ended:
            break
        if disk:
            now = _raw_monotonic()
            if now >= next_check:
                if _over_disk(prefix, os.getpid(), disk, with_root=False):
                    stop = -1
                    break
                next_check = now + DISK_TICK
            info = _signal.sigtimedwait(watched, max(0.0, next_check - now))
        else:
            info = _signal.sigwaitinfo(watched)
        if info is not None and info.si_signo in stops:
            stop = info.si_signo
    if stop:
        try:
            _raw_kill(pid, SIGKILL)
        except OSError:
            pass
        status = _raw_waitpid(pid, 0)[1]
    _end_own_children()  # the job's process is reaped: this is only what it left
    if stop > 0:
        # sphinx-build is gone or called the job off: end as that signal says.
        _signal.signal(stop, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {stop})
        _raw_kill(os.getpid(), stop)
        _raw_exit(128 + stop)
    assert status is not None
    _mirror(prefix, status)


def _mirror(prefix: str, status: int) -> NoReturn:
    """Leave ``PREFIX.exit`` and end as the job's process did (``status``)."""
    os.close(os.open(f"{prefix}.exit", os.O_WRONLY | os.O_CREAT, 0o600))
    if os.WIFSIGNALED(status):
        import resource  # the job's process is gone: nothing to keep pristine

        # The job's process has dumped its core, if the system keeps them: no second.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        number = os.WTERMSIG(status)
        if number != SIGKILL:
            _signal.signal(number, _signal.SIG_DFL)  # Python ignores SIGXFSZ and SIGPIPE
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, {number})
        _raw_kill(os.getpid(), number)
        _raw_exit(128 + number)
    _raw_exit(os.waitstatus_to_exitcode(status))


def _once(prefix: str, parent: int, disk: int, roots: str) -> None:
    _supervise(prefix, parent, disk, roots)
    job = _read_frame_file(f"{prefix}.job")
    _prepare(job)
    error = _run_preamble(job["preamble"])
    _limit_output(job["output_limit"])
    _work(prefix, job, error)


# ---------------------------------------------------------------------------
# ``serve``: the fork server, and the workers it forks.


def _warm_up(doctest: Any) -> None:
    """Run one tiny doctest, so that what doctest loads lazily (pdb, readline...)
    is loaded once here rather than in every worker."""
    runner = doctest.DocTestRunner(verbose=False)
    test = doctest.DocTestParser().get_doctest(">>> 1\n1\n", {}, "warm-up", None, 0)
    runner.run(test, out=lambda text: None)


class _Worker:
    """A running worker, as its server sees it."""

    __slots__ = ("disk", "pid", "prefix", "slot", "slot_fd")

    def __init__(self, pid: int, prefix: str, slot: int, slot_fd: int, disk: int) -> None:
        self.pid = pid
        self.prefix = prefix
        self.slot = slot
        self.slot_fd = slot_fd
        self.disk = disk


class _Server:
    """The fork server, in its one thread.

    One loop polls for requests on standard input, for the bell while a
    request waits for a slot, for each worker's exit (its pidfd becomes
    readable) and for the death of sphinx-build (its pidfd too).  No second
    thread: a fork from a process with one thread copies less and stops no
    other CPU.

    *Slots* bound how many workers all servers together run: one file per
    slot, which a server locks (``flock``) before it forks a worker and keeps
    locked, as does the worker (the lock belongs to the open file, which both
    hold), until the worker and everything it started are gone.  The kernel
    keeps that count, so no death (of a worker, or of a server between taking
    a slot and forking) can lose or add one.  The *bell* is a pipe a server
    rings when it frees a slot; a server whose request waits for a slot
    listens to it, and tries the locks again.
    """

    def __init__(self, control: int, config: Wire) -> None:
        self.pid = os.getpid()
        self.control = control
        self.slots: list[str] = config["slots"]
        # Open for each worker to list itself through (see record_root).
        self.roots = os.open(
            config["roots"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        self.bell_in, self.bell_out = config["bell"]
        self.workers: dict[int, _Worker] = {}  # pidfd -> worker
        import fcntl
        import mmap
        from collections import deque  # a server starts after its preamble

        self._flock = fcntl.flock
        self._lock_now = fcntl.LOCK_EX | fcntl.LOCK_NB
        # One byte per slot, set by the worker holding it once it has ended
        # what its examples started: then no one needs to look for leftovers.
        self.clean = mmap.mmap(-1, len(self.slots))
        self._next_slot = os.getpid() % len(self.slots)
        self.queue: deque[tuple[str, bytes, int]] = deque()  # (prefix, job, disk)
        self.ended = False  # standard input is closed, or sphinx-build is gone
        self._input = bytearray()
        assert _raw_pidfd_open is not None  # see the config check
        self._pidfd_open = _raw_pidfd_open
        select = _pristine_select()
        self._poller = select.poll()
        self._pollin: int = select.POLLIN
        self._poller.register(0, self._pollin)
        self._listening = False  # to the bell
        # sphinx-build started this process with PR_SET_PDEATHSIG, which kills
        # it at once; from here on, it ends its workers first (see serve).
        self.parent_fd = -1
        try:
            self.parent_fd = self._pidfd_open(config["parent"])
        except OSError:
            self.ended = True
        if os.getppid() != config["parent"]:
            self.ended = True
        else:
            self._poller.register(self.parent_fd, self._pollin)
        if Native.load():
            Native.prctl(PR_SET_PDEATHSIG, 0)
        # What the preamble started is shared by every worker: kept to the end.
        self.kept = frozenset(_children(os.getpid()))
        # A preamble that ignores SIGCHLD would have the kernel reap workers
        # before the server can read how they ended: the server takes the
        # default back, and each worker ignores it again, as the preamble left it.
        self.sigchld_ignored = _signal.getsignal(_signal.SIGCHLD) == _signal.SIG_IGN
        if self.sigchld_ignored:
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)

    def answer(self, **fields: Any) -> None:
        # One write of a small frame: atomic on a pipe, whoever else writes.
        _write_all(self.control, frame(fields))

    def serve(self, error: str | None) -> NoReturn:
        os.set_blocking(0, False)
        next_check = _raw_monotonic() + DISK_TICK
        while not self.ended:
            if bool(self.queue) != self._listening:
                self._listening = not self._listening
                if self._listening:
                    self._poller.register(self.bell_in, self._pollin)
                else:
                    self._poller.unregister(self.bell_in)
            timeout = None
            if any(w.disk for w in self.workers.values()):
                timeout = max(0, int((next_check - _raw_monotonic()) * 1000) + 1)
            reaped = False
            for fd, _events in self._poller.poll(timeout):
                if fd == 0:
                    self.take(error)
                elif fd == self.bell_in:
                    self.on_bell(error)
                elif fd == self.parent_fd:
                    self.ended = True
                elif fd in self.workers:
                    self.reap(fd)
                    reaped = True
            if reaped:
                # Once every worker that ended is reaped: a worker forked in
                # between would hold the slots of those not reaped yet.
                self.start_queued(error)
            if timeout is not None and _raw_monotonic() >= next_check:
                self.check_disk()
                next_check = _raw_monotonic() + DISK_TICK
        self.shut_down()

    def shut_down(self) -> NoReturn:
        """Standard input ended, or sphinx-build died: workers still running have
        no one left to time them out or read their results.  End them, and all
        they started, then this process."""
        for worker in self.workers.values():
            for kill in (_raw_killpg, _raw_kill):
                try:
                    kill(worker.pid, SIGKILL)
                except OSError:
                    pass
        end_children()
        _raw_exit(0)

    def take(self, error: str | None) -> None:
        """Queue the requests standard input has, and start what a slot allows."""
        try:
            chunk = _raw_read(0, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            self.ended = True
            return
        self._input += chunk
        requests, used = unframe(self._input)
        del self._input[:used]
        for request in requests:
            if request["t"] == "run":
                # The job stays encoded: the worker decodes it, not the server.
                self.queue.append((request["job"], request["wire"], request.get("disk", 0)))
            else:
                self._drop(set(request["jobs"]))
        self.start_queued(error)

    def _drop(self, dropping: set[str]) -> None:
        """Forget requests not started yet (fail-fast, work not needed after all).

        A request already started is left alone: the parent, told it started,
        kills it.
        """
        kept = []
        for item in self.queue:
            if item[0] in dropping:
                self.answer(t="dropped", job=item[0])
            else:
                kept.append(item)
        self.queue.clear()
        self.queue.extend(kept)

    def on_bell(self, error: str | None) -> None:
        try:
            _raw_read(self.bell_in, 1)
        except BlockingIOError:
            return  # another server answered it
        self.start_queued(error)

    def ring(self) -> None:
        try:
            _raw_write(self.bell_out, b"+")
        except OSError:
            pass  # full of rings already: whoever listens wakes anyway

    def _take_slot(self) -> tuple[int, int] | None:
        """A free slot, locked: (its number, the descriptor holding the lock)."""
        count = len(self.slots)
        for offset in range(count):
            slot = (self._next_slot + offset) % count
            fd = os.open(self.slots[slot], os.O_RDWR | os.O_CLOEXEC)
            try:
                self._flock(fd, self._lock_now)
            except OSError:
                os.close(fd)
                continue
            self._next_slot = (slot + 1) % count
            return slot, fd
        return None

    def start_queued(self, error: str | None) -> None:
        """Fork a worker for each queued request, while a slot is free."""
        while self.queue:
            taken = self._take_slot()
            if taken is None:
                return  # whoever frees one rings the bell
            slot, slot_fd = taken
            prefix, job, disk = self.queue.popleft()
            self.clean[slot] = 0
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()  # the preamble's fork, so that e.g. gevent re-inits its hub
            except OSError as exc:
                os.close(slot_fd)
                self.ring()
                self.answer(t="fork_failed", job=prefix, error=str(exc))
                continue
            if pid == 0:
                _become_worker(self, prefix, job, error, slot, slot_fd)
            try:
                pidfd = self._pidfd_open(pid)
            except OSError as exc:
                # Unwatched, it could not free its slot: stop it now.
                _raw_kill(pid, SIGKILL)
                _raw_waitpid(pid, 0)
                self.free(slot_fd, clean=False)
                self.answer(t="fork_failed", job=prefix, error=f"cannot watch the worker: {exc}")
                continue
            self.workers[pidfd] = _Worker(pid, prefix, slot, slot_fd, disk)
            self._poller.register(pidfd, self._pollin)

    def free(self, slot_fd: int, *, clean: bool) -> None:
        """A worker is reaped: end what it left, free its slot, ring the bell."""
        if not clean:
            end_children(self.kept | {w.pid for w in self.workers.values()})
        os.close(slot_fd)
        self.ring()

    def reap(self, pidfd: int) -> None:
        """A worker ended: kill what it left running, reap it, free its slot."""
        worker = self.workers.pop(pidfd)
        self._poller.unregister(pidfd)
        os.close(pidfd)
        # Not reaped yet, so its process group cannot have been recycled.
        try:
            _raw_killpg(worker.pid, SIGKILL)
        except OSError:
            pass
        status = _raw_waitpid(worker.pid, 0)[1]
        ended = _raw_monotonic()
        # A worker that ended its job as it should has ended what its examples
        # started, and said so; else what it left is this process's now.
        self.free(worker.slot_fd, clean=bool(self.clean[worker.slot]))
        self.answer(t="exit", job=worker.prefix, status=status, ts=ended)

    def check_disk(self) -> None:
        """Kill each worker whose job wrote more than its ``disk`` limit."""
        for worker in list(self.workers.values()):
            if worker.disk and _over_disk(worker.prefix, worker.pid, worker.disk,
                                          with_root=True):
                try:
                    _raw_killpg(worker.pid, SIGKILL)
                except OSError:
                    pass


def _pristine_select() -> ModuleType:
    """An instance of ``select`` of our own, as the interpreter made it: the
    preamble may have patched the one everyone imports (gevent replaces its
    ``poll``) or emptied it (eventlet removes ``poll``)."""
    import importlib.util

    spec = importlib.util.find_spec("select")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _become_worker(
    server: _Server, prefix: str, job: bytes, error: str | None, slot: int, slot_fd: int
) -> NoReturn:
    """In a newly forked worker: leave the server's ways, run the job, exit."""
    try:
        # Listed before anything else, so that it is found even if its server
        # and sphinx-build both die from here on (see _watch).
        record_root(server.roots, os.getpid(), ROOT_JOB)
        # Said before leaving the server's process group: a worker the parent
        # has not heard of dies with that group.
        server.answer(t="started", job=prefix, pid=os.getpid(), ts=_raw_monotonic())
        os.setsid()
        # The other workers' slots too: holding them would keep them taken.
        # One of those workers may have ended since this process was forked,
        # and its server found the slot still held (by this process): a ring
        # once they are closed tells it to try again.
        for fd in (*(w.slot_fd for w in server.workers.values()), *server.workers):
            os.close(fd)
        if server.workers:
            server.ring()
        for fd in (server.control, server.bell_in, server.bell_out, server.parent_fd,
                   server.roots):
            if fd >= 0:
                os.close(fd)
        # A subreaper, so that nothing its examples start escapes it; stopped
        # where it stands if its server dies, so that sphinx-build finds it,
        # and all below it, still there to kill (see kill_tree).
        if not contain(parent=server.pid, death_signal=SIGSTOP):
            _raw_exit(EXIT_INTERNAL)  # the server is gone already
        if server.sigchld_ignored:
            _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
        wire = marshal.loads(job)
    except BaseException:
        # Never back into the server's loop: this process is not the server.
        import traceback

        traceback.print_exc()
        _raw_exit(EXIT_INTERNAL)
    clean = server.clean

    def leaving() -> None:
        _end_own_children()
        clean[slot] = 1

    _work(prefix, wire, error, own_network=True, leaving=leaving)


def _serve(config_path: str) -> None:
    config = _read_frame_file(config_path)
    # Our answers go on a private copy of fd 1; fd 1 itself becomes stderr so
    # that whatever the preamble prints cannot corrupt them.
    control = os.dup(1)
    os.dup2(2, 1)
    _prepare(config)
    error = _run_preamble(config["preamble"])
    server = _Server(control, config)

    if error is None:
        _Machinery.load()  # what every worker needs, loaded once
        _warm_up(_Machinery.doctest)
        # Inherited by every worker, so set once here rather than in each.
        _limit_output(config["output_limit"])
        # Whatever exists now is shared with every worker: keep the collector
        # from touching (and so copying) it in each of them.
        import gc

        gc.freeze()

    server.answer(t="ready", preamble_error=error)
    server.serve(error)


# ---------------------------------------------------------------------------
# ``watch``: the build's scratch folder goes when the build does.


def _watch(folder: str, parent: int) -> None:
    """Remove ``folder`` once sphinx-build has closed this process's standard
    input (as it closes) or died, whichever comes first; it may die by SIGKILL,
    which leaves it no chance to do so itself.

    First it ends what no one else will.  Servers and supervisors end what
    they run when sphinx-build dies; but a worker whose fork server an
    example killed stops where it stands, for sphinx-build to end it and all
    below it (see kill_tree), and if sphinx-build dies in that moment too, or
    is closing and no longer listens, no one would.  So sphinx-build lists
    each server and supervisor it starts in ``folder/roots``, each process
    that runs a job lists itself there before it runs anything, and this
    process ends those still there (see _end_roots).
    """
    import select
    import shutil

    poller = select.poll()
    poller.register(0, select.POLLIN)
    try:
        parent_fd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        parent_fd = -1
    else:
        poller.register(parent_fd, select.POLLIN)
    done = os.getppid() != parent
    while not done:
        for fd, _events in poller.poll():
            if fd != 0 or not os.read(0, 4096):
                done = True
    _end_roots(os.path.join(folder, "roots"))
    shutil.rmtree(folder, ignore_errors=True)


def _end_roots(path: str, seconds: float = 5.0) -> None:
    """End every job's process listed in ``path`` that is still there, until no
    process that may list more (a server, a supervisor) is left; after
    ``seconds``, end those too."""
    ended: set[tuple[int, int]] = set()
    gone: set[bytes] = set()  # lines of processes found gone: they do not come back
    deadline = _raw_monotonic() + seconds
    while True:
        try:
            with open(path, "rb") as f:
                lines = [line for line in f if line not in gone]
        except OSError:
            return
        here: set[tuple[str, int, int]] = set()
        for line in lines:
            kind, pid, start = line.split()
            if _listed(int(pid), int(start)):  # the same process, not a reused pid
                here.add((kind.decode(), int(pid), int(start)))
            else:
                gone.add(line)
        leaders = [root[1] for root in here if root[0] == ROOT_LEADER]
        if leaders and _raw_monotonic() > deadline:
            for leader in leaders:
                kill_tree(leader)
        for root in here:
            if root[0] == ROOT_JOB and root[1:] not in ended:
                kill_tree(root[1])
                ended.add(root[1:])
        if not leaders:
            return  # no one left to add to the list: it was the last round
        time.sleep(0.01)


def probe_network() -> str | None:
    """Why no network namespace can be made here, or None if one can (run in a
    throw-away process: it moves the process into one)."""
    try:
        Native.own_network()
    except OSError as exc:
        return str(exc)
    return None


def main(argv: list[str]) -> None:
    mode, args = argv[1], argv[2:]
    if mode == "once":
        _once(args[0], int(args[1]), int(args[2]), args[3])
    elif mode == "serve":
        _serve(args[0])
    elif mode == "watch":
        _watch(args[0], int(args[1]))
    elif mode == "probe-network":
        reason = probe_network()
        if reason:
            sys.exit(reason)
    else:
        sys.exit(
            f"usage: {argv[0]} once PREFIX PARENT DISK ROOTS | serve CONFIG | watch FOLDER PARENT"
            " | probe-network"
        )


if __name__ == "__main__":
    main(sys.argv)

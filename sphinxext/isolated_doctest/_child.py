"""The child side: run a preamble first, then doctest groups, and report as data.

A child executes this file as a script (``python _child.py serve|once PATH``)
and never imports the package: importing ``sphinxext.isolated_doctest`` would
import Sphinx, and the whole point of a child is that nothing but the
interpreter's own start-up has run before the preamble.  (The parent imports
this module for its codec, :func:`frame` and :func:`unframe`, and for its exit
statuses.)  So, until the preamble has run, this module uses only what a bare
interpreter has already loaded (``sys``, ``os``, ``marshal``, ``_signal``);
``doctest`` and the rest are imported after it.

Everything crossing a process boundary is a *frame*: four bytes of length,
little-endian, then a ``marshal``-encoded plain value.  Parent and child are the
same interpreter, so marshal is both safe and the cheapest codec there is.

Two modes share the code below:

``once PREFIX``
    Fork the job's process (see :func:`_supervise`), which reads the frame in
    ``PREFIX.job``, runs its preamble, runs the job and exits.  One fresh
    interpreter per job.
``serve CONFIG``
    Read the frame in the file CONFIG, run the preamble and import the doctest
    machinery once, then read job requests from standard input and fork one
    worker per job, each a copy of the pristine, preambled process.  A worker is
    forked only with a token from the token pipe that every fork server shares
    (as in make's jobserver), so that all servers together run at most as many
    jobs at once as the build allows; the worker's exit gives the token back.

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
        cls.runner_class = _make_runner_class(doctest)
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


def _is_ours(tb: Any) -> bool:
    return bool(tb.tb_frame.f_code.co_filename == __file__)


def _work(prefix: str, job: Wire, preamble_error: str | None) -> NoReturn:
    """Run a job in this process, report, and leave without running atexit hooks."""
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
            _run_job(job)
        _Channel.emit("done")
    except _ChannelClosed:
        status = EXIT_CHANNEL
    except KeyboardInterrupt:
        import traceback

        status = EXIT_INTERRUPTED  # even if the events file is gone too
        _Channel.emit("interrupted", traceback=_cut(traceback.format_exc()))
    except BaseException as exc:
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
        _raw_exit(status)


def _supervise(prefix: str) -> None:
    """Fork the process that runs the job, wait for it here, and end as it did.

    sphinx-build starts this process itself, so it is what the job's examples
    would see as their parent (``os.getppid()``): an example that signals or
    kills its parent must reach a process of the job, never the build.  Only
    the new process returns from here.  This one, once the job's process has
    ended, leaves ``PREFIX.exit`` (the parent's sign that its status is the
    job's own) and ends with the same status; a death without that file is
    this process lost.
    """
    pid = os.fork()
    if pid == 0:
        return
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)  # die of it, not print it
    status = _raw_waitpid(pid, 0)[1]
    os.close(os.open(f"{prefix}.exit", os.O_WRONLY | os.O_CREAT, 0o600))
    if os.WIFSIGNALED(status):
        import resource  # the job's process is gone: nothing to keep pristine

        # The job's process has dumped its core, if the system keeps them: no second.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        number = os.WTERMSIG(status)
        _signal.signal(number, _signal.SIG_DFL)  # Python ignores SIGXFSZ and SIGPIPE
        os.kill(os.getpid(), number)
        _raw_exit(128 + number)
    _raw_exit(os.waitstatus_to_exitcode(status))


def _once(prefix: str) -> None:
    _supervise(prefix)
    job = _read_frame_file(f"{prefix}.job")
    _prepare(job)
    error = _run_preamble(job["preamble"])
    _limit_output(job["output_limit"])
    _work(prefix, job, error)


def _warm_up(doctest: Any) -> None:
    """Run one tiny doctest, so that what doctest loads lazily (pdb, readline...)
    is loaded once here rather than in every worker."""
    runner = doctest.DocTestRunner(verbose=False)
    test = doctest.DocTestParser().get_doctest(">>> 1\n1\n", {}, "warm-up", None, 0)
    runner.run(test, out=lambda text: None)


class _Server:
    """The fork server, in its one thread.

    One loop polls for requests on standard input, for a token while a request
    waits for one, and for each worker's exit (its pidfd becomes readable).
    No second thread: a fork from a process with one thread copies less and
    stops no other CPU.
    """

    def __init__(self, control: int, tokens: tuple[int, int]) -> None:
        self.control = control
        # The token pipe is non-blocking (the parent made it so): several
        # servers may be woken for one token, and only one gets it.
        self.tokens_in, self.tokens_out = tokens
        self.workers: dict[int, tuple[int, str]] = {}  # pidfd -> (pid, job prefix)
        from collections import deque  # a server starts after its preamble

        self.queue: deque[tuple[str, bytes]] = deque()  # (prefix, job), not yet started
        self.ended = False  # standard input is closed
        self._input = bytearray()
        assert _raw_pidfd_open is not None  # see the config check
        self._pidfd_open = _raw_pidfd_open
        select = _pristine_select()
        self._poller = select.poll()
        self._pollin: int = select.POLLIN
        self._poller.register(0, self._pollin)
        self._waiting = False  # for a token
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
        while not self.ended:
            if bool(self.queue) != self._waiting:
                self._waiting = not self._waiting
                if self._waiting:
                    self._poller.register(self.tokens_in, self._pollin)
                else:
                    self._poller.unregister(self.tokens_in)
            for fd, _events in self._poller.poll():
                if fd == 0:
                    self.take()
                elif fd == self.tokens_in:
                    self.start_next(error)
                else:
                    self.reap(fd)
        # Standard input ended: the parent is done with us, or gone.  Workers
        # still running have no one left to time them out or read their results.
        for pid, _prefix in self.workers.values():
            try:
                _raw_killpg(pid, 9)
            except OSError:
                pass
        _raw_exit(0)

    def take(self) -> None:
        """Queue the requests standard input has."""
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
                self.queue.append((request["job"], request["wire"]))
            else:
                self._drop(set(request["jobs"]))

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

    def start_next(self, error: str | None) -> None:
        """Take a token, if there still is one, and fork the next worker with it."""
        try:
            _raw_read(self.tokens_in, 1)
        except BlockingIOError:
            return  # another server took it
        if not self.queue:
            _raw_write(self.tokens_out, b"+")
            return
        prefix, job = self.queue.popleft()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()  # the preamble's fork, so that e.g. gevent re-inits its hub
        except OSError as exc:
            _raw_write(self.tokens_out, b"+")
            self.answer(t="fork_failed", job=prefix, error=str(exc))
            return
        if pid == 0:
            _become_worker(self, prefix, job, error)
        try:
            pidfd = self._pidfd_open(pid)
        except OSError as exc:
            # Unwatched, it could not give its token back: stop it now.
            os.kill(pid, 9)
            _raw_waitpid(pid, 0)
            _raw_write(self.tokens_out, b"+")
            self.answer(t="fork_failed", job=prefix, error=f"cannot watch the worker: {exc}")
            return
        self.workers[pidfd] = (pid, prefix)
        self._poller.register(pidfd, self._pollin)

    def reap(self, pidfd: int) -> None:
        """A worker ended: kill what it left running, reap it, give its token back."""
        pid, prefix = self.workers.pop(pidfd)
        self._poller.unregister(pidfd)
        os.close(pidfd)
        # Not reaped yet, so its process group cannot have been recycled.
        try:
            _raw_killpg(pid, 9)
        except OSError:
            pass
        status = _raw_waitpid(pid, 0)[1]
        ended = _raw_monotonic()
        _raw_write(self.tokens_out, b"+")
        self.answer(t="exit", job=prefix, status=status, ts=ended)


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


def _become_worker(server: _Server, prefix: str, job: bytes, error: str | None) -> NoReturn:
    """In a newly forked worker: leave the server's ways, run the job, exit."""
    try:
        # Said before leaving the server's process group: a worker the parent
        # has not heard of dies with that group.
        server.answer(t="started", job=prefix, pid=os.getpid(), ts=_raw_monotonic())
        os.setsid()
        for fd in (server.control, server.tokens_in, server.tokens_out, *server.workers):
            os.close(fd)
        if server.sigchld_ignored:
            _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
        wire = marshal.loads(job)
    except BaseException:
        # Never back into the server's loop: this process is not the server.
        import traceback

        traceback.print_exc()
        _raw_exit(EXIT_INTERNAL)
    _work(prefix, wire, error)


def _serve(config_path: str) -> None:
    config = _read_frame_file(config_path)
    # Our answers go on a private copy of fd 1; fd 1 itself becomes stderr so
    # that whatever the preamble prints cannot corrupt them.
    control = os.dup(1)
    os.dup2(2, 1)
    _prepare(config)
    error = _run_preamble(config["preamble"])
    server = _Server(control, tuple(config["tokens"]))

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


def main(argv: list[str]) -> None:
    mode, path = argv[1], argv[2]
    if mode == "once":
        _once(path)
    elif mode == "serve":
        _serve(path)
    else:
        sys.exit(f"usage: {argv[0]} once PREFIX | serve CONFIG")


if __name__ == "__main__":
    main(sys.argv)

"""The child side: run a preamble first, then doctest groups, and report as data.

This file is executed as a script (``python _child.py serve|once DIR``), never
imported from the package: importing ``sphinxext.isolated_doctest`` would import
Sphinx, and the whole point of a child is that nothing but the interpreter's own
start-up has run before the preamble.  So, until the preamble has run, this
module uses only what a bare interpreter has already loaded (``sys``, ``os``,
``json``'s few pure modules); ``doctest`` and the rest are imported after it.

Two modes share the code below:

``once PREFIX``
    Read ``PREFIX.json``, run its preamble, run the job, exit.  One fresh
    interpreter per job.
``serve CONFIG``
    Read the JSON file CONFIG, run the preamble and import the doctest
    machinery once, then read jobs from standard input, one JSON line each, and
    fork one worker per job.  Each worker is a copy of the pristine, preambled
    process.

A job is named by a path prefix: the worker writes ``PREFIX.out`` and
``PREFIX.err`` (its file descriptors 1 and 2) and ``PREFIX.ev``, its results as
JSON lines, all plain files in a memory-backed folder that the parent reads
once the worker has ended.  Writing files rather than pipes means the parent is
not woken for every line, and nothing is lost when a worker dies mid-line.
A resource limit on file size stops a worker that floods its output.  The
parent owns all policy; this side never decides what is a warning or an error.
"""

from __future__ import annotations

# Only modules every interpreter has imported before it runs a script.
import _thread
import os
import sys
import time

# Keep the raw primitives: a preamble may replace ``os.fork`` and friends with
# cooperative versions, and the fork server's own bookkeeping must not depend
# on an event loop it never runs.
_raw_fork = os.fork
_raw_read = os.read
_raw_write = os.write
_raw_waitpid = os.waitpid
_raw_waitid = os.waitid  # Linux and the BSDs; the fork server needs it
_raw_killpg = os.killpg
_raw_exit = os._exit

# For the type checker only (``always_true`` in pyproject.toml): importing
# ``typing`` here would load modules before the preamble.
_TYPING = False
if _TYPING:
    from collections.abc import Iterator
    from types import ModuleType
    from typing import Any, NoReturn

    Wire = dict[str, Any]  # a JSON object as the parent wrote it
_raw_start_thread = _thread.start_new_thread
_raw_allocate_lock = _thread.allocate_lock
_raw_sleep = time.sleep

#: Report text longer than this is cut (head and tail kept) before it is sent.
TEXT_LIMIT = 64 * 1024


EXIT_INTERRUPTED = 120  # a KeyboardInterrupt escaped an example
EXIT_INTERNAL = 121  # the child itself failed; the traceback is on stderr


def _load_json(path: str) -> Any:
    import json  # json imports only re and codecs-level modules

    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _run_preamble(source: str, origin: str) -> str | None:
    """Run the preamble in its own namespace; return a traceback text or None."""
    if not source:
        return None
    try:
        code = compile(source, f"<preamble set at {origin}>" if origin else "<preamble>", "exec")
        exec(code, {"__name__": "__preamble__"})
    except BaseException:
        import traceback

        return traceback.format_exc()
    return None


class _Channel:
    """JSON lines on the ``ev`` FIFO."""

    def __init__(self, fd: int) -> None:
        import json

        self._fd = fd
        self._dumps = json.dumps

    def emit(self, kind: str, **fields: Any) -> None:
        fields["t"] = kind
        data = (self._dumps(fields, ensure_ascii=True) + "\n").encode("ascii")
        view = memoryview(data)
        while view:
            n = _raw_write(self._fd, view)
            view = view[n:]


def _cut(text: str) -> str:
    if len(text) <= TEXT_LIMIT:
        return text
    head, tail = text[: TEXT_LIMIT // 2], text[-TEXT_LIMIT // 8 :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[... {cut} characters cut ...]\n{tail}"


# ---------------------------------------------------------------------------
# Running one job: the same steps as sphinx.ext.doctest's test_group.


class _Mode:
    """The compile mode for the example being run.

    ``doctest`` compiles every example in ``'single'`` mode, which cannot take
    multi-statement setup or ``testcode`` blocks.  Sphinx's reference builder
    swaps ``doctest.compile`` for one that reads the mode from the builder; we
    do the same, but only inside this throw-away process.
    """

    value = "single"


def _install_compile(doctest: ModuleType) -> None:
    def _compile(
        source: str, filename: str, mode: str, flags: int = 0, dont_inherit: bool = False
    ) -> Any:
        return compile(source, filename, _Mode.value, flags, dont_inherit)

    doctest.compile = _compile  # type: ignore[attr-defined]
    if doctest._OutputRedirectingPdb is not _LazyDebugger:
        _LazyDebugger.real = doctest._OutputRedirectingPdb
        doctest._OutputRedirectingPdb = _LazyDebugger  # type: ignore[attr-defined]


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


def _make_runner_class(doctest: Any, channel: _Channel) -> Any:
    class Runner(doctest.DocTestRunner):  # type: ignore[misc]
        phase = "test"

        def report_start(self, out: Any, test: Any, example: Any) -> None:
            if test.lineno is not None and self.phase == "test" and _Mode.value == "single":
                line = test.lineno + (example.lineno or 0) + 1
            else:
                line = (example.lineno or 0) + 1
            channel.emit(
                "start", phase=self.phase, group=test.name, filename=test.filename,
                line=line, source=_cut(example.source),
            )
            super().report_start(out, test, example)

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


def _build_group(spec: Wire, job: Wire, channel: _Channel) -> _Group | None:
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


def _run_group(
    doctest: Any, runners: list[Any], group: _Group, job: Wire, channel: _Channel
) -> bool:
    """Run one group; return False if it failed (for fail-fast)."""
    setup_runner, test_runner, cleanup_runner = runners
    parser = doctest.DocTestParser()
    ns: dict[str, Any] = {}
    fail_fast = job["fail_fast"]

    def out(text: str) -> None:
        channel.emit("out", text=_cut(text))

    def run(runner: Any, test: Any, kind: str) -> bool:
        old_f, old_t = runner.failures, runner.tries
        test.globs = ns
        runner.run(test, out=out, clear_globs=False)
        channel.emit(
            "record", runner=kind, name=test.name,
            failures=runner.failures - old_f, tries=runner.tries - old_t,
        )
        return bool(runner.failures == old_f)

    def run_setup_cleanup(runner: Any, blocks: list[Wire], what: str) -> bool:
        examples = [doctest.Example(b["code"], "", lineno=b["lineno"]) for b in blocks]
        if not examples:
            return True
        test = doctest.DocTest(
            examples, {}, f"{group.name} ({what} code)", blocks[0]["filename"], 0, None
        )
        _Mode.value = "exec"
        return run(runner, test, what)

    channel.emit("group", name=group.name, ts=time.monotonic())
    if not run_setup_cleanup(setup_runner, group.setup, "setup"):
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
                channel.emit(
                    "warning", text=f"ignoring invalid doctest code: {block['code']!r}",
                    filename=block["filename"], lineno=block["lineno"],
                )
                continue
            if not test.examples:
                continue
            for example in test.examples:
                new_opt = _options(block)
                new_opt.update(example.options)
                example.options = new_opt
            _Mode.value = "single"
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
            test = doctest.DocTest(
                [example], {}, group.name, block["filename"], block["lineno"], None
            )
            _Mode.value = "exec"
        if not run(test_runner, test, "test"):
            success = False
            if fail_fast:
                break

    if not run_setup_cleanup(cleanup_runner, group.cleanup, "cleanup"):
        return False
    return success


def _run_job(job: Wire, channel: _Channel) -> None:
    import doctest

    _install_compile(doctest)
    Runner = _make_runner_class(doctest, channel)
    flags = job["optionflags"]

    for spec in job["groups"]:
        group = _build_group(spec, job, channel)
        if group is None:
            channel.emit("absent", name=spec["name"])
            continue
        runners: list[Any] = []
        for phase in ("setup", "test", "cleanup"):
            runner = Runner(verbose=False, optionflags=flags)
            runner.phase = phase
            runners.append(runner)
        ok = _run_group(doctest, runners, group, job, channel)
        channel.emit("group_done", name=group.name, ok=ok, ts=time.monotonic())
        if not ok and job["fail_fast"]:
            break


def _open_job_files(prefix: str, limit: int) -> int:
    """Point fds 0, 1 and 2 at /dev/null and the job's files; return the ev fd."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    for name, target in (("out", 1), ("err", 2)):
        fd = os.open(f"{prefix}.{name}", flags, 0o600)
        os.dup2(fd, target)
        os.close(fd)
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        # Python ignores SIGXFSZ, so a write past the limit would only raise
        # OSError and the group would go on; the default action stops the child
        # in the example that flooded, where the report then places the flood.
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    return os.open(f"{prefix}.ev", flags, 0o600)


def _work(prefix: str, job: Wire, preamble_error: str | None) -> NoReturn:
    """Run a job in this process, report, and leave without running atexit hooks."""
    status = 0
    ev = _open_job_files(prefix, job["output_limit"])
    channel = _Channel(ev)
    try:
        if preamble_error is not None:
            channel.emit("preamble_error", traceback=_cut(preamble_error))
        else:
            _run_job(job, channel)
        channel.emit("done")
    except KeyboardInterrupt:
        import traceback

        channel.emit("interrupted", traceback=_cut(traceback.format_exc()))
        status = EXIT_INTERRUPTED
    except BaseException:
        import traceback

        traceback.print_exc()
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


def _once(prefix: str) -> None:
    job = _load_json(f"{prefix}.json")
    sys.path[:] = job["sys_path"]
    error = _run_preamble(job["preamble"], job["preamble_origin"])
    _work(prefix, job, error)


def _read_lines(fd: int) -> Iterator[bytes]:
    buffer = b""
    while True:
        chunk = _raw_read(fd, 65536)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from lines


def _warm_up(doctest: Any) -> None:
    """Run one tiny doctest, so that what doctest loads lazily (pdb, readline...)
    is loaded once here rather than in every worker."""
    runner = doctest.DocTestRunner(verbose=False)
    test = doctest.DocTestParser().get_doctest(">>> 1\n1\n", {}, "warm-up", None, 0)
    runner.run(test, out=lambda text: None)


def _serve(config_path: str) -> None:
    config = _load_json(config_path)
    # Our answers go on a private copy of fd 1; fd 1 itself becomes stderr so
    # that whatever the preamble prints cannot corrupt them.
    control = os.dup(1)
    os.dup2(2, 1)
    sys.path[:] = config["sys_path"]
    error = _run_preamble(config["preamble"], config["preamble_origin"])

    import json

    if error is None:
        import doctest  # the machinery every worker needs, loaded once
        import resource  # noqa: F401  (every worker sets its output limit with these)
        import signal  # noqa: F401

        _install_compile(doctest)
        _warm_up(doctest)
        # Whatever exists now is shared with every worker: keep the collector
        # from touching (and so copying) it in each of them.
        import gc

        gc.freeze()

    def answer(**fields: Any) -> None:
        _raw_write(control, (json.dumps(fields) + "\n").encode())

    jobs: dict[int, str] = {}  # worker pid -> job prefix
    lock = _raw_allocate_lock()
    wake = _raw_allocate_lock()  # released when there may be a worker to wait for
    wake.acquire()

    def nudge() -> None:
        try:
            wake.release()
        except RuntimeError:  # already released
            pass

    def reap() -> None:
        """In a thread of its own: report each worker's exit as it happens."""
        while True:
            try:
                # Wait without reaping first, so the process group cannot be
                # recycled before we kill what the example left running in it.
                info = _raw_waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                with lock:
                    if not jobs and done[0]:
                        return
                wake.acquire()
                continue
            if info is None:
                continue
            pid = info.si_pid
            try:
                _raw_killpg(pid, 9)
            except OSError:
                pass
            status = _raw_waitpid(pid, 0)[1]
            with lock:
                prefix = jobs.pop(pid, None)
            if prefix is not None:
                answer(t="exit", job=prefix, status=status)

    done = [False]
    answer(t="ready", preamble_error=error)
    reaper_started = False
    for line in _read_lines(0):
        request = json.loads(line)
        prefix = request["prefix"]
        sys.stdout.flush()
        sys.stderr.flush()
        with lock:
            worker = os.fork()  # the preamble's fork, so that e.g. gevent re-inits its hub
            if worker == 0:
                os.setsid()
                os.close(control)
                _work(prefix, request["job"], error)
            jobs[worker] = prefix
        answer(t="started", job=prefix, pid=worker)
        nudge()
        if not reaper_started:
            _raw_start_thread(reap, ())
            reaper_started = True
    with lock:
        done[0] = True
    nudge()
    while True:
        with lock:
            if not jobs:
                break
        _raw_sleep(0.01)


def main(argv: list[str]) -> None:
    mode, path = argv[1], argv[2]
    if mode == "once":
        _once(path)
    elif mode == "serve":
        _serve(path)
    else:
        sys.exit(f"usage: {argv[0]} once PREFIX | serve CONFIG.json")


if __name__ == "__main__":
    main(sys.argv)

"""From results to what a user reads: output.txt text, counts, per-group outcomes.

The text is sphinx.ext.doctest's, produced by the same ``doctest`` runners: the
children send their failure reports and per-test counts, and here they are
replayed, in document order, into one set of runners per page whose
``summarize`` writes the familiar lines.  Faults (a timeout, a crash) become a
failure report of the same shape, at the example that was running.
"""

from __future__ import annotations

import re
import sys
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sphinx.ext.doctest import SphinxDocTestRunner

from sphinxext.isolated_doctest._job import NAMED_PREAMBLES
from sphinxext.isolated_doctest._result import decode
from sphinxext.isolated_doctest._shared import LOGGER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sphinxext.isolated_doctest._job import Job, Preamble
    from sphinxext.isolated_doctest._result import Fault, JobResult

DIVIDER = "*" * 70
PHASES = ("setup", "test", "cleanup")
STDERR_LINES = 20
#: Python 3.13's doctest counts skipped examples, and reports them with failures.
SKIPS_COUNTED = sys.version_info >= (3, 13)


@dataclass(kw_only=True, slots=True)
class Counts:
    """Tries and failures for the three phases, as the summary prints them."""

    tries: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))

    def add(self, phase: str, failures: int, tries: int) -> None:
        self.failures[phase] += failures
        self.tries[phase] += tries


@dataclass(kw_only=True, slots=True)
class GroupOutcome:
    """One group's result, for the JSON and JUnit reports.

    Its counts are those output.txt adds up: tests (tried in the test phase),
    and failures in tests, setup code and cleanup code.
    """

    docname: str
    filename: str
    group: str
    line: int | None
    #: ``passed``, ``failed`` or ``error`` (a fault: timeout, crash...).
    status: str = "passed"
    duration: float = 0.0
    cached: bool = False
    tries: int = 0
    failures: int = 0
    setup_failures: int = 0
    cleanup_failures: int = 0
    text: str = ""
    message: str = ""
    #: The group's first failure: where, and why (see :func:`_failure_message`).
    first_failure: tuple[str, str, str] | None = None

    def count(self, phase: str, failures: int, tries: int) -> None:
        if phase == "test":
            self.tries += tries
            self.failures += failures
        elif phase == "setup":
            self.setup_failures += failures
        else:
            self.cleanup_failures += failures

    @property
    def headline(self) -> str:
        """One line on why the group did not pass: the fault, else where its
        first failure is."""
        first = next((ln for ln in self.text.splitlines() if ln.startswith("File ")), "")
        return self.message or first or f"{self.failures} failure(s)"


def present(job: Job, result: JobResult | None) -> bool:
    """Whether any group of the job exists once ``:skipif:`` has been applied."""
    if job.error is not None:
        return True
    if result is None:
        return False
    return result.fault is not None or any(
        e["t"] in {"group", "preamble_error"} for e in result.events
    )


def _record(
    runner: SphinxDocTestRunner, name: str, failures: int, tries: int, skips: int = 0
) -> None:
    """Add a child's counts to a runner, exactly as ``DocTestRunner.run`` would."""
    test = SimpleNamespace(name=name)
    record = runner._DocTestRunner__record_outcome  # type: ignore[attr-defined]
    if SKIPS_COUNTED:
        record(test, failures, tries, skips)
    else:
        record(test, failures, tries)


def _indent(text: str) -> str:
    return textwrap.indent(text.rstrip("\n"), "    ") + "\n"


def _stderr_tail(text: str) -> str:
    lines = text.rstrip().splitlines()[-STDERR_LINES:]
    if not lines:
        return ""
    return "Last lines written to stderr:\n" + _indent("\n".join(lines))


def _split_origin(origin: str) -> tuple[str, str]:
    path, _, line = origin.rpartition(":")
    if path and line.isdigit():
        return path, line
    return origin or "conf.py", "?"


#: Where a block of stderr starts: a Python warning's first line, or a traceback.
_STDERR_BLOCK = re.compile(r"^\S.*:\d+: \w+: |^Traceback \(most recent call last\):")
#: A deprecation warning raised by the preamble's own code: ``_child`` compiles
#: it at the file and line that set it (``<preamble>`` where there is none).
_DEPRECATION = r":\d+: \w*DeprecationWarning: "


def split_preamble_stderr(preamble: Preamble, text: str) -> tuple[str, str]:
    """A fork server's stderr: what to show, and the known notices of a named
    preamble (the deprecation warning its import raises, as eventlet's does on
    every run), to show only when asked for (``-v``)."""
    if preamble.label not in NAMED_PREAMBLES:
        return text.strip(), ""
    shown: list[str] = []
    notices: list[str] = []
    target = shown
    own = re.compile(f"^{re.escape(preamble.path or '<preamble>')}{_DEPRECATION}")
    for line in text.splitlines():
        if _STDERR_BLOCK.match(line):
            target = notices if own.match(line) else shown
        target.append(line)
    return "\n".join(shown).strip(), "\n".join(notices).strip()


#: The files the reference gives the global setup and cleanup code.
_GLOBAL_CODE = {
    "<global_setup>": "doctest_global_setup",
    "<global_cleanup>": "doctest_global_cleanup",
}


def _where(start: dict[str, Any]) -> str:
    """Where an example is, for our messages: its own line, not the report's."""
    setting = _GLOBAL_CODE.get(start["filename"])
    if setting is not None:
        return f"in {setting}"
    exact = start.get("exact")
    return "in the example" if exact is None else f"in the example at line {exact}"


def fault_report(
    *, job: Job, fault: Fault, events: tuple[dict[str, Any], ...], stderr: str
) -> tuple[str, str, str, int, int, str]:
    """The failure text for a fault; (phase, test name, tries, skips) to count
    it under; and the short cause, with where it happened."""
    pending: list[dict[str, Any]] = []
    group = job.groups[0].name if job.groups else "default"
    ended = False  # the group's examples had all run
    for event in events:
        if event["t"] in {"record", "group"}:
            pending = []
            if event["t"] == "group":
                group, ended = event["name"], False
        elif event["t"] == "group_done":
            ended = True
        elif event["t"] == "start":
            pending.append(event)
    rest = f"; the rest of group {group!r} did not run"
    skips = 0
    if pending:
        start = pending[-1]
        phase, name = start["phase"], start["group"]
        tries = start.get("tried", len(pending))
        if SKIPS_COUNTED:  # what doctest would have counted as skipped so far
            skips = max(0, tries - len(pending))
        header = f'File "{start["filename"]}", line {start["line"]}, in {name}'
        where = _where(start)
        body = "Failed example:\n" + _indent(start["source"])
    elif ended:
        # Its process died on the way out (say, flushing what an example left).
        phase, name, tries = "cleanup", f"{group} (cleanup code)", 1
        header = f'File "{job.filename}", line ?, in {name}'
        where, rest = "after its last example, as its process ended", ""
        body = ""
    else:
        phase, name, tries = "setup", f"{group} (setup code)", 1
        header = f'File "{job.filename}", line ?, in {name}'
        where = "before its first example"
        body = ""
    message = f"{fault.message} {where}"
    text = (
        f"{DIVIDER}\n{header}\n{body}"
        f"{message[0].upper()}{message[1:]}{rest}.\n"
        f"{_stderr_tail(stderr)}"
    )
    return text, phase, name, tries, skips, message


def preamble_report(*, job: Job, group: str, detail: str, failed: str) -> str:
    """The failure text for a preamble that failed (or cannot be used) in ``group``."""
    if job.error_kind == "sandbox":
        # Not the preamble's doing: said at the group's first line.
        first = next((g.lineno for g in job.groups if g.name == group), None)
        return (
            f'{DIVIDER}\nFile "{job.filename}", line {first or "?"}, in {group} (setup code)\n'
            f"{failed}\n{_indent(detail)}"
        )
    path, line = _split_origin(job.preamble.origin)
    return (
        f'{DIVIDER}\nFile "{path}", line {line}, in {group} (setup code)\n'
        f"Failed example:\n{_indent(job.preamble.source or job.preamble.value)}"
        f"{failed}\n{_indent(detail)}"
    )


def _failure_message(outcome: GroupOutcome) -> str:
    """A failed group's short cause: how many failed, and the first one's why."""
    if outcome.first_failure is None:
        return f"{outcome.failures} of {outcome.tries} tests failed"
    phase, where, cause = outcome.first_failure
    if phase == "test":
        return f"{outcome.failures} of {outcome.tries} tests failed, first {where}: {cause}"
    return f"its {phase} code failed {where}: {cause}"


class OutputRelay:
    """Shows what examples wrote to their stdout and stderr on sphinx-build's
    own, as the reference (which runs them in its own process) shows it: the
    same text, in the same place among the failure reports, each part under a
    line that says whose it is (several groups run at once here)."""

    def __init__(self, *, quiet: bool = False) -> None:
        #: Show nothing (a runner that reports children's output its own way).
        self.quiet = quiet
        #: The last header written, per stream: a part that follows it needs no other.
        self._last: list[str | None] = [None, None]
        self._preambles: set[tuple[str, str, int, str]] = set()

    def interrupted(self, stream: int) -> None:
        """Something else was written to stdout (0) or stderr (1): the next part
        there needs its header."""
        self._last[stream] = None

    def write(self, stream: int, owner: str, text: str) -> None:
        """Write ``text``, written by ``owner``, to stdout (0) or stderr (1)."""
        if not text or self.quiet:
            return
        out = sys.stdout if stream == 0 else sys.stderr
        header = f"{('stdout', 'stderr')[stream]} of {owner}:"
        if self._last[stream] != header:
            out.write(header + "\n")
            self._last[stream] = header
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()

    def write_preamble(self, stream: int, preamble: Preamble, text: str) -> None:
        """What a preamble wrote: once a build, however many children ran it.
        The notices a named preamble prints on every run (eventlet's
        deprecation) are shown only with -v."""
        key = (preamble.source, preamble.origin, stream, text)
        if not text or self.quiet or key in self._preambles:
            return
        self._preambles.add(key)
        owner = f"the {preamble.label} preamble (set at {preamble.origin or 'conf.py'})"
        notices = ""
        if stream == 1:
            text, notices = split_preamble_stderr(preamble, text)
        if text:
            self.write(stream, owner, text)
        if notices:
            LOGGER.verbose(f"stderr of {owner}:")
            LOGGER.verbose(textwrap.indent(notices, "    "))


class _Written:
    """A job's stdout and stderr, shown part by part as its events say where
    each part ends."""

    def __init__(self, job: Job, result: JobResult, relay: OutputRelay) -> None:
        self._job = job
        self._data = (result.stdout, result.stderr)
        self._sizes = (result.stdout_size, result.stderr_size)
        self._shown = [0, 0]
        self._relay = relay
        #: Whose output comes next: a group's name, or None for the preamble's.
        self.owner: str | None = None

    def show(self, written: list[int | None] | None) -> None:
        """Show both streams up to ``written`` (or to their end, if None)."""
        for stream, data in enumerate(self._data):
            end = len(data) if written is None else written[stream]
            if end is None:
                continue
            end = min(end, len(data))
            if end <= self._shown[stream]:
                continue
            text = decode(data[self._shown[stream] : end])
            self._shown[stream] = end
            if written is None and self._sizes[stream] > len(data):
                cut = self._sizes[stream] - len(data)
                text = f"{text.rstrip(chr(10))}\n[... {cut} more bytes not shown ...]\n"
            if self.owner is None:
                self._relay.write_preamble(stream, self._job.preamble, text)
            else:
                self._relay.write(stream, f"{self._job.filename}, group {self.owner!r}", text)


@contextmanager
def _no_colour() -> Iterator[None]:
    """Python 3.13 colours doctest's summary when stderr is a terminal: never
    in output.txt (nor, then, on the console that shows the same text)."""
    try:
        import _colorize  # type: ignore[import-not-found]
    except ImportError:
        yield
        return
    saved = _colorize.can_colorize
    _colorize.can_colorize = lambda *args, **kwargs: False
    try:
        yield
    finally:
        _colorize.can_colorize = saved


class DocumentReport:
    """Replays one page's results into doctest runners, as the reference builder does."""

    def __init__(
        self, *, flags: int, show_successes: bool, relay: OutputRelay | None = None
    ) -> None:
        self.runners = {
            phase: SphinxDocTestRunner(verbose=False, optionflags=flags) for phase in PHASES
        }
        self.show_successes = show_successes
        self.relay = relay
        self.outcomes: list[GroupOutcome] = []

    def replay(
        self, job: Job, result: JobResult | None, warn_out: Callable[[str], None]
    ) -> bool:
        """Write the job's failure reports, count its tests; False if anything failed."""
        if job.error is not None:
            for spec in job.groups:
                warn_out(preamble_report(
                    job=job, group=spec.name, detail=job.error, failed="Cannot run:"
                ))
                _record(self.runners["setup"], f"{spec.name} (setup code)", 1, 1)
                self._outcome(job, spec.name, status="error", message=job.error,
                              setup_failures=1)
            return False
        assert result is not None
        written = _Written(job, result, self.relay or OutputRelay(quiet=True))
        try:
            return self._replay_events(job, result, warn_out, written)
        finally:
            written.show(None)

    def _replay_events(
        self,
        job: Job,
        result: JobResult,
        warn_out: Callable[[str], None],
        written: _Written,
    ) -> bool:
        success = True
        first = len(self.outcomes)
        current: GroupOutcome | None = None
        started = 0.0
        start: dict[str, Any] | None = None
        for event in result.events:
            kind = event["t"]
            if kind == "group":
                written.show(event.get("written"))
                current = self._outcome(job, event["name"], cached=result.cached)
                written.owner = current.group
                started = event["ts"]
            elif kind == "group_done" and current is not None:
                written.show(event.get("written"))
                current.duration = event["ts"] - started
                if not event["ok"]:
                    success = False
                    if current.status == "passed":
                        current.status = "failed"
                    current.message = current.message or _failure_message(current)
                current = None
            elif kind == "start":
                start = event
            elif kind == "failure":
                if current is not None and current.first_failure is None and start is not None:
                    current.first_failure = (start["phase"], _where(start), event["cause"])
            elif kind == "out":
                written.show(event.get("written"))
                warn_out(event["text"])
                if current is not None:
                    current.text += event["text"]
            elif kind == "record":
                failures, tries = event["failures"], event["tries"]
                _record(self.runners[event["runner"]], event["name"], failures, tries,
                        event.get("skips", 0))
                if current is not None:
                    current.count(event["runner"], failures, tries)
                    if failures:
                        current.status = "failed"
            elif kind == "warning":
                LOGGER.warning(event["text"], location=(event["filename"], event["lineno"]))
                if self.relay is not None:
                    self.relay.interrupted(1)
            elif kind == "preamble_error":
                for spec in job.groups:
                    text = preamble_report(
                        job=job, group=spec.name, detail=event["traceback"],
                        failed="Exception raised by the preamble:",
                    )
                    warn_out(text)
                    _record(self.runners["setup"], f"{spec.name} (setup code)", 1, 1)
                    last = event["traceback"].rstrip().splitlines()[-1:]
                    self._outcome(job, spec.name, status="error", text=text, setup_failures=1,
                                  message=f"the preamble failed: {''.join(last)}")
                return False
        if result.fault is not None:
            text, phase, name, tries, skips, message = fault_report(
                job=job, fault=result.fault, events=result.events, stderr=result.stderr_tail
            )
            warn_out(text)
            _record(self.runners[phase], name, 1, tries, skips)
            if current is None:
                group = name.removesuffix(" (setup code)").removesuffix(" (cleanup code)")
                # The group may have ended before the fault: one outcome per group.
                done = [o for o in self.outcomes[first:] if o.group == group]
                current = done[-1] if done else self._outcome(job, group)
            current.status = "error"
            current.count(phase, 1, tries)
            current.text += text
            current.message = message
            current.duration = result.duration
            return False
        return success

    def _outcome(self, job: Job, group: str, **fields: Any) -> GroupOutcome:
        line = next((g.lineno for g in job.groups if g.name == group), None)
        outcome = GroupOutcome(
            docname=job.docname, filename=job.filename, group=group, line=line, **fields
        )
        self.outcomes.append(outcome)
        return outcome

    def summarize(self, out: Callable[[str], None], counts: Counts) -> None:
        """The per-page summaries, exactly where and how the reference prints them."""
        setup, test, cleanup = (self.runners[p] for p in PHASES)
        with _no_colour():
            counts.add("setup", *setup.summarize(out, verbose=False))
            if test.tries:
                counts.add("test", *test.summarize(out, verbose=self.show_successes))
            if cleanup.tries:
                counts.add("cleanup", *cleanup.summarize(out, verbose=self.show_successes))

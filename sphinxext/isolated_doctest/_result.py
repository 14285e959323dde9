"""What came back from a child, as plain data: events, exit status, output tails."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# The child's exit statuses with a meaning of their own; that module imports
# nothing but the interpreter's own.
from sphinxext.isolated_doctest._child import (
    EXIT_CHANNEL,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_SANDBOX,
)

if TYPE_CHECKING:
    from sphinxext.isolated_doctest._job import Sandbox

#: The largest file a child may write, its stdout, stderr and report included;
#: past it the child is stopped (SIGXFSZ) and reported as flooding its output.
OUTPUT_LIMIT = 64 * 1024 * 1024
#: How much of what a child writes to its stdout and stderr is shown on
#: sphinx-build's own; the rest is counted.
RELAY_LIMIT = 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    """Why a child did not finish its job normally."""

    #: One of ``timeout``, ``flood``, ``signal``, ``exit``, ``interrupted``,
    #: ``internal``, ``server``, ``start``, ``channel``, ``memory``, ``disk``,
    #: ``cpu``, ``sandbox``.
    kind: str
    #: What happened, in a sentence without the location: "timed out after 5 s".
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class JobResult:
    """The outcome of one job (see ``_job.Job``)."""

    index: int
    #: The child's events in order, as it wrote them (plain JSON objects).
    events: tuple[dict[str, Any], ...]
    fault: Fault | None
    #: The last bytes the child wrote to its stdout and stderr, decoded.
    stdout_tail: str
    stderr_tail: str
    duration: float
    cached: bool = False
    #: What the child wrote to its stdout and stderr (up to RELAY_LIMIT bytes),
    #: one character per byte (latin-1), so that the byte counts in its events
    #: (``written``) index them; see :func:`decode`.
    stdout: str = ""
    stderr: str = ""
    #: How many bytes it wrote to each.
    stdout_size: int = 0
    stderr_size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "events": list(self.events),
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "duration": self.duration,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_size": self.stdout_size,
            "stderr_size": self.stderr_size,
        }

    @classmethod
    def from_cache(cls, index: int, data: dict[str, Any]) -> JobResult:
        return cls(
            index=index,
            events=tuple(data["events"]),
            fault=None,
            stdout_tail=data["stdout_tail"],
            stderr_tail=data["stderr_tail"],
            duration=data["duration"],
            cached=True,
            stdout=data["stdout"],
            stderr=data["stderr"],
            stdout_size=data["stdout_size"],
            stderr_size=data["stderr_size"],
        )


def decode(written: str) -> str:
    """Text from :attr:`JobResult.stdout` or ``stderr``: UTF-8, bad bytes escaped."""
    return written.encode("latin-1").decode("utf-8", errors="backslashreplace")


def flood_fault() -> Fault:
    return Fault(
        kind="flood",
        message=f"flooded its output (more than {OUTPUT_LIMIT // 2**20} MiB "
        "written to stdout, stderr or a file) and was stopped",
    )


def size_text(size: float) -> str:
    """``size`` bytes as a reader counts them: ``512 MiB``, ``1.5 GiB``, ``100 bytes``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size:g} bytes"


def limit_fault(what: str, limit: float) -> Fault:
    """The fault of a group that went past a limit of its sandbox."""
    if what == "memory":
        message = f"used more than {size_text(limit)} of memory"
    elif what == "disk":
        message = f"wrote more than {size_text(limit)}"
    else:
        message = f"used more than {limit:g} s of CPU time"
    return Fault(kind=what, message=message)


def describe_exit(
    returncode: int, events: tuple[dict[str, Any], ...], sandbox: Sandbox | None = None
) -> Fault | None:
    """Turn a child's exit status into a fault, or None for a normal end."""
    for event in events:
        if event["t"] == "limit":  # whatever the status: it was killed for it
            return limit_fault(event["what"], event["limit"])
        if event["t"] == "sandbox_error":
            return Fault(kind="sandbox", message=f"could not enter its sandbox: {event['error']}")
    finished = any(e["t"] == "done" for e in events)
    if returncode == 0 and finished:
        return None
    if sandbox is not None and sandbox.cpu and returncode == -signal.SIGXCPU:
        return limit_fault("cpu", sandbox.cpu)
    if returncode == -signal.SIGXFSZ:
        if sandbox is not None and sandbox.disk and sandbox.disk < OUTPUT_LIMIT:
            return limit_fault("disk", sandbox.disk)
        return flood_fault()
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return Fault(kind="signal", message=f"killed by {name}")
    if returncode == EXIT_INTERRUPTED:
        return Fault(kind="interrupted", message="raised KeyboardInterrupt")
    if returncode == EXIT_INTERNAL:
        return Fault(kind="internal", message="failed inside the doctest runner")
    if returncode == EXIT_SANDBOX:
        return Fault(kind="sandbox", message="could not enter its sandbox")
    if returncode == EXIT_CHANNEL:
        return Fault(kind="channel", message="closed the file descriptor of the group's results")
    return Fault(kind="exit", message=f"exited with status {returncode}")

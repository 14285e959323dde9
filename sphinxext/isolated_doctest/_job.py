"""What a page asks for, frozen: the data handed from the builder to a child."""

from __future__ import annotations

import difflib
import keyword
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.config import Config

#: Preambles known by name; any other value is Python source.  Each is one
#: line, so that a traceback from it points at the line that named it.
NAMED_PREAMBLES: dict[str, str] = {
    "gevent": "from gevent import monkey; monkey.patch_all()\n",
    "eventlet": "import eventlet; eventlet.monkey_patch()\n",
}

_BARE_NAME = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*")


def preamble_problem(value: str) -> str | None:
    """Why ``value`` cannot be a preamble, or None.

    A bare name that is not a known preamble is a misspelt one: as Python
    source it would only look the name up and fail with a NameError in every
    group.
    """
    name = value.strip()
    if name in NAMED_PREAMBLES or not _BARE_NAME.fullmatch(name) or keyword.iskeyword(name):
        return None
    close = difflib.get_close_matches(name, NAMED_PREAMBLES, n=1, cutoff=0.5)
    if close:
        hint = f"did you mean {close[0]!r}?"
    else:
        hint = f"the known ones are {' and '.join(map(repr, sorted(NAMED_PREAMBLES)))};"
    return f"unknown preamble {name!r}; {hint} Python source must be more than a name"


@dataclass(frozen=True, kw_only=True, slots=True)
class Preamble:
    """Code run in a fresh child before anything else is imported."""

    #: The value as the user wrote it: a name from NAMED_PREAMBLES, or source.
    value: str
    #: Where it was set, as ``file:line`` (or ``conf.py``), for messages.
    origin: str
    #: The file that sets it (absolute) and the line, for its tracebacks.
    path: str = ""
    line: int = 0

    @property
    def source(self) -> str:
        return NAMED_PREAMBLES.get(self.value.strip(), self.value)

    @property
    def where(self) -> str:
        """The location of a message about it: ``/abs/file:line``."""
        if self.path:
            return f"{self.path}:{self.line}" if self.line else self.path
        return self.origin

    def wire(self) -> dict[str, Any]:
        """As the child runs it: the source, and where to say it is."""
        return {"source": self.source, "path": self.path, "line": self.line}

    @property
    def label(self) -> str:
        """A short name for reports: ``gevent``, ``eventlet`` or ``custom``."""
        value = self.value.strip()
        return value if value in NAMED_PREAMBLES else ("custom" if value else "")


NO_PREAMBLE = Preamble(value="", origin="")

#: The environment variables a sandbox with ``"env": True`` passes on (``*``
#: matches anything): what Python, the locale and the named preambles read.
DEFAULT_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR",
    "PYTHON*", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SYSTEMROOT", "GEVENT_*", "EVENTLET_*",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Sandbox:
    """What a group's processes may not do (``isolated_doctest_sandbox``)."""

    #: The names (``*`` patterns) of the environment variables examples see;
    #: None for the whole environment of the build.
    env: tuple[str, ...] | None = None
    #: False: a network namespace of the group's own, with loopback only.
    network: bool = True
    #: Bytes each process may hold (its data: heap and private mappings); 0: no limit.
    memory: int = 0
    #: Bytes the group's processes may write in all; 0: no limit.
    disk: int = 0
    #: Seconds of CPU time each process may use; 0: no limit.
    cpu: float = 0

    def __bool__(self) -> bool:
        return self != NO_SANDBOX

    def tightened(self, other: Sandbox) -> Sandbox:
        """The stricter of the two, part by part (a page or a block may ask for
        less than conf.py allows, never for more)."""

        def least(a: float, b: float) -> float:
            return min(a, b) if a and b else a or b

        if self.env is None or other.env is None:
            env = self.env if other.env is None else other.env
        else:
            env = tuple(name for name in self.env if name in other.env)
        return Sandbox(
            env=env,
            network=self.network and other.network,
            memory=int(least(self.memory, other.memory)),
            disk=int(least(self.disk, other.disk)),
            cpu=least(self.cpu, other.cpu),
        )

    def wire(self) -> dict[str, Any] | None:
        if not self:
            return None
        return {
            "env": None if self.env is None else list(self.env),
            "network": self.network,
            "memory": self.memory,
            "disk": self.disk,
            "cpu": self.cpu,
        }


NO_SANDBOX = Sandbox()


@dataclass(frozen=True, kw_only=True, slots=True)
class Block:
    """One ``testsetup``/``doctest``/``testcode``/... block, as the child needs it."""

    kind: str
    code: str
    filename: str
    lineno: int | None
    #: doctest option flags set by ``:options:``, as (flag, on) pairs.
    options: tuple[tuple[int, bool], ...] = ()
    skipif: str | None = None
    #: True for blocks of the ``*`` group, which join every group of the page.
    star: bool = False
    #: The line of the block's first line of code in its file (``lineno`` is
    #: the reference builder's, for its report), if known: for our messages.
    source_line: int | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "code": self.code,
            "filename": self.filename,
            "lineno": self.lineno,
            "options": {str(flag): on for flag, on in self.options},
            "skipif": self.skipif,
            "star": self.star,
            "source_line": self.source_line,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupSpec:
    """A doctest group of one page, in document order, before ``:skipif:``."""

    name: str
    blocks: tuple[Block, ...]
    #: Seconds this group may run; 0 means no limit.
    timeout: float
    #: The document line of the group's first block (for reports).
    lineno: int | None

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "blocks": [b.wire() for b in self.blocks]}


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSettings:
    """The parts of the configuration every child needs.

    As in the reference builder, ``sys_path`` and ``optionflags`` are read when
    the builder starts, the rest when the tests run.
    """

    sys_path: tuple[str, ...]
    global_setup: str
    global_cleanup: str
    optionflags: int
    fail_fast: bool
    #: sphinx-build's own ``sys.argv``, which examples see in the reference.
    argv: tuple[str, ...] = ()
    #: Where sphinx.ext.doctest's compile hook is: (file, first line, source).
    compile_hook: tuple[str, int, str] | None = None

    def child(self) -> dict[str, Any]:
        """What a child needs before any job: for a fork server and a job alike."""
        return {
            "sys_path": list(self.sys_path),
            "argv": list(self.argv),
            "compile_hook": list(self.compile_hook) if self.compile_hook else None,
        }

    @classmethod
    def from_config(cls, config: Config) -> RunSettings:
        return cls(
            # What the reference builder gives an example: doctest_path first,
            # then the build's sys.path, conf.py's additions included.
            sys_path=(*map(str, config.doctest_path), *sys.path),
            global_setup=config.doctest_global_setup,
            global_cleanup=config.doctest_global_cleanup,
            optionflags=config.doctest_default_flags,
            fail_fast=config.doctest_fail_fast,
            argv=tuple(sys.argv),
            compile_hook=reference_compile_hook(),
        )


def reference_compile_hook() -> tuple[str, int, str] | None:
    """Where sphinx.ext.doctest's compile hook is, and its source: a child
    rebuilds it there (see ``_child._reference_compile``)."""
    import inspect

    from sphinx.ext.doctest import DocTestBuilder

    method = DocTestBuilder.compile
    try:
        lines, first = inspect.getsourcelines(method)
        path = inspect.getsourcefile(method)
    except (OSError, TypeError):
        return None
    return (path, first, "".join(lines)) if path else None


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    """One child's work: one or more groups of one page, after one preamble."""

    #: Position in document order; results are reported in this order.
    index: int
    docname: str
    #: The page's source file, relative to the source folder (for reports).
    filename: str
    groups: tuple[GroupSpec, ...]
    preamble: Preamble
    sandbox: Sandbox = NO_SANDBOX
    #: Why the job must not run (e.g. two preambles in one group), if so.
    error: str | None = None
    #: What ``error`` is about: ``"preamble"`` or ``"sandbox"``.
    error_kind: str = "preamble"

    def wire(self, settings: RunSettings) -> dict[str, Any]:
        """The job as the child reads it: JSON-ready plain data."""
        return {
            **settings.child(),
            "global_setup": settings.global_setup,
            "global_cleanup": settings.global_cleanup,
            "optionflags": settings.optionflags,
            "fail_fast": settings.fail_fast,
            "preamble": self.preamble.wire(),
            "groups": [g.wire() for g in self.groups],
            "sandbox": self.sandbox.wire(),
        }

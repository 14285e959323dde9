"""Configuration: the reference builder's values plus ours, declared and checked once."""

from __future__ import annotations

import doctest
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sphinxext.isolated_doctest import _sandbox
from sphinxext.isolated_doctest._job import Sandbox, preamble_problem
from sphinxext.isolated_doctest._shared import Subtype, line_of, warn

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config

ISOLATION_LEVELS = ("group", "document", "block")
START_METHODS = ("auto", "fork", "spawn")
DEFAULT_TIMEOUT = 120
#: The defaults of the values :func:`check` checks, which replace a bad value.
DEFAULTS = {
    "isolated_doctest_isolation": "group",
    "isolated_doctest_timeout": DEFAULT_TIMEOUT,
    "isolated_doctest_jobs": "auto",
    "isolated_doctest_start": "auto",
    "isolated_doctest_preamble_note": True,
}


def register(app: Sphinx) -> None:
    """Declare every config value, with the reference builder's names and defaults."""
    # sphinx.ext.doctest's own values, unchanged, so that conf.py files carry over.
    app.add_config_value("doctest_show_successes", True, "", types=frozenset({bool}))
    app.add_config_value("doctest_path", (), "", types=frozenset({list, tuple}))
    app.add_config_value("doctest_test_doctest_blocks", "default", "", types=frozenset({str}))
    app.add_config_value("doctest_global_setup", "", "", types=frozenset({str}))
    app.add_config_value("doctest_global_cleanup", "", "", types=frozenset({str}))
    app.add_config_value(
        "doctest_default_flags",
        doctest.DONT_ACCEPT_TRUE_FOR_1 | doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL,
        "",
        types=frozenset({int}),
    )
    app.add_config_value("doctest_fail_fast", False, "", types=frozenset({bool}))
    # Ours.  The preamble is read into the doctrees (for the HTML note).
    app.add_config_value("isolated_doctest_preamble", "", "env", types=frozenset({str}))
    app.add_config_value(
        "isolated_doctest_isolation", DEFAULTS["isolated_doctest_isolation"], "",
        types=frozenset({str}),
    )
    app.add_config_value(
        "isolated_doctest_timeout", DEFAULTS["isolated_doctest_timeout"], "",
        types=frozenset({int, float}),
    )
    app.add_config_value(
        "isolated_doctest_jobs", DEFAULTS["isolated_doctest_jobs"], "", types=frozenset({str, int})
    )
    app.add_config_value(
        "isolated_doctest_start", DEFAULTS["isolated_doctest_start"], "", types=frozenset({str})
    )
    app.add_config_value("isolated_doctest_cache", True, "", types=frozenset({bool}))
    app.add_config_value(
        "isolated_doctest_preamble_note", DEFAULTS["isolated_doctest_preamble_note"], "html",
        types=frozenset({bool, str}),
    )
    app.add_config_value("isolated_doctest_sandbox", {}, "", types=frozenset({dict}))


def check(app: Sphinx, config: Config) -> None:
    """``config-inited``: report each value that cannot be used, at its line.

    The build goes on with that setting's default and fails at the end (exit
    status 1): every result is still reported, and no crash report is printed,
    as sphinx-build prints one for any exception raised here.
    """
    problems: list[tuple[str, str]] = []
    if config.isolated_doctest_isolation not in ISOLATION_LEVELS:
        problems.append(
            ("isolated_doctest_isolation", f"use one of {', '.join(map(repr, ISOLATION_LEVELS))}")
        )
    if config.isolated_doctest_start not in START_METHODS:
        problems.append(
            ("isolated_doctest_start", f"use one of {', '.join(map(repr, START_METHODS))}")
        )
    elif config.isolated_doctest_start == "fork" and not _can_fork_server():
        problems.append((
            "isolated_doctest_start",
            "it needs os.fork and os.pidfd_open (Linux 5.3 or later): use 'auto' or 'spawn' here",
        ))
    timeout = config.isolated_doctest_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        problems.append(("isolated_doctest_timeout", "use a number of seconds, or 0 for none"))
    if _jobs(config.isolated_doctest_jobs) is None:
        problems.append(("isolated_doctest_jobs", "use 'auto' or a whole number from 1"))
    note = config.isolated_doctest_preamble_note
    if isinstance(note, str) and "{preamble}" not in note:
        problems.append((
            "isolated_doctest_preamble_note",
            "a text must contain '{preamble}', or use True or False",
        ))
    conf_py = Path(app.confdir, "conf.py") if app.confdir else None
    _check_preamble(app, config, conf_py)

    def where(name: str) -> tuple[str, str | None]:
        if name in config.overrides or conf_py is None:
            return " (set with -D)", None
        return "", f"{conf_py}:{line_of(conf_py, name) or 1}"

    for name, fix in problems:
        value, default = getattr(config, name), DEFAULTS[name]
        said, location = where(name)
        warn(
            "%s = %r%s: %s; this build runs with the default, %r, and fails",
            name, value, said, fix, default,
            subtype=Subtype.CONFIG, location=location, error=True,
        )
        setattr(config, name, default)
    sandbox_problems = _check_sandbox(config)
    said, location = where("isolated_doctest_sandbox")
    for setting, message in sandbox_problems:
        warn("isolated_doctest_sandbox%s%s: %s", setting, said, message,
             subtype=Subtype.CONFIG, location=location, error=True)
    if problems or sandbox_problems:
        app.statuscode = 1


def _check_preamble(app: Sphinx, config: Config, conf_py: Path | None) -> None:
    """A preamble name that is none: an error at its line.  It is not replaced:
    the groups that would run after it fail, each saying why."""
    problem = preamble_problem(config.isolated_doctest_preamble)
    if problem is None:
        return
    name = "isolated_doctest_preamble"
    if name in config.overrides or conf_py is None:
        problem, location = f"{problem} (set with -D)", None
    else:
        location = f"{conf_py}:{line_of(conf_py, name) or 1}"
    warn("%s", problem, subtype=Subtype.PREAMBLE, location=location, error=True)
    app.statuscode = 1


def _check_sandbox(config: Config) -> list[tuple[str, str]]:
    """What is wrong with ``isolated_doctest_sandbox``, part by part, as
    (``" = value"`` or ``"['part'] = value"``, what to do); each bad part is
    left out (the whole value, if it is not a dict)."""
    value = config.isolated_doctest_sandbox
    good, problems = _sandbox.config_problems(value)
    messages = []
    for part, fix in problems:
        if not part:
            messages.append(
                (f" = {value!r}", f"{fix}; this build runs without a sandbox, and fails")
            )
        else:
            messages.append(
                (f"[{part!r}] = {value[part]!r}", f"{fix}; this build runs without it, and fails")
            )
    if good.get("network") is False:
        problem = _sandbox.network_problem()
        if problem is not None:
            messages.append((
                "['network'] = False",
                f"this system cannot give a group a network namespace of its own ({problem}); "
                "the groups without network are not run, and this build fails",
            ))
    config.isolated_doctest_sandbox = good
    return messages


def _can_fork_server() -> bool:
    """Whether a fork server can run here: it forks, and watches its workers
    through pidfds."""
    if not hasattr(os, "fork") or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # an older kernel
        return False
    return True


def start_method(value: str) -> str:
    """``"fork"`` or ``"spawn"``, for a checked ``isolated_doctest_start``."""
    if value == "auto":
        return "fork" if _can_fork_server() else "spawn"
    return value


def _jobs(value: object) -> int | None:
    """The number of parallel children for a ``isolated_doctest_jobs`` value, or None."""
    if value == "auto":
        return os.cpu_count() or 1
    if isinstance(value, str) and value.isdigit():  # from ``-D isolated_doctest_jobs=2``
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """The builder's own settings, read once per build."""

    isolation: str
    timeout: float
    jobs: int
    start_method: str
    cache: bool
    #: What conf.py's ``isolated_doctest_sandbox`` sets for every group.
    sandbox: Sandbox

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        return cls(
            isolation=config.isolated_doctest_isolation,
            timeout=float(config.isolated_doctest_timeout),
            jobs=_jobs(config.isolated_doctest_jobs) or 1,
            start_method=start_method(config.isolated_doctest_start),
            cache=config.isolated_doctest_cache,
            sandbox=_sandbox.from_config(config.isolated_doctest_sandbox),
        )

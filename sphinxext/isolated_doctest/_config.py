"""Configuration: the reference builder's values plus ours, declared and checked once."""

from __future__ import annotations

import doctest
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.errors import ConfigError

from sphinxext.isolated_doctest._shared import Subtype, line_of, warn

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config

ISOLATION_LEVELS = ("group", "document", "block")
START_METHODS = ("auto", "fork", "spawn")
DEFAULT_TIMEOUT = 120


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
    app.add_config_value("isolated_doctest_isolation", "group", "", types=frozenset({str}))
    app.add_config_value(
        "isolated_doctest_timeout", DEFAULT_TIMEOUT, "", types=frozenset({int, float})
    )
    app.add_config_value("isolated_doctest_jobs", "auto", "", types=frozenset({str, int}))
    app.add_config_value("isolated_doctest_start", "auto", "", types=frozenset({str}))
    app.add_config_value("isolated_doctest_cache", True, "", types=frozenset({bool}))
    app.add_config_value(
        "isolated_doctest_preamble_note", True, "html", types=frozenset({bool, str})
    )


def check(app: Sphinx, config: Config) -> None:
    """``config-inited``: log each bad value, then stop with one error."""
    problems: list[tuple[str, str]] = []
    if config.isolated_doctest_isolation not in ISOLATION_LEVELS:
        problems.append((
            "isolated_doctest_isolation",
            f"isolated_doctest_isolation = {config.isolated_doctest_isolation!r}: "
            f"use one of {', '.join(map(repr, ISOLATION_LEVELS))}",
        ))
    if config.isolated_doctest_start not in START_METHODS:
        problems.append((
            "isolated_doctest_start",
            f"isolated_doctest_start = {config.isolated_doctest_start!r}: "
            f"use one of {', '.join(map(repr, START_METHODS))}",
        ))
    if config.isolated_doctest_start == "fork" and not _can_fork_server():
        problems.append((
            "isolated_doctest_start",
            "isolated_doctest_start = 'fork' needs os.fork and os.pidfd_open "
            "(Linux 5.3 or later): use 'spawn' here",
        ))
    timeout = config.isolated_doctest_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        problems.append((
            "isolated_doctest_timeout",
            f"isolated_doctest_timeout = {timeout!r}: use a number of seconds, or 0 for none",
        ))
    jobs = config.isolated_doctest_jobs
    if _jobs(jobs) is None:
        problems.append((
            "isolated_doctest_jobs",
            f"isolated_doctest_jobs = {jobs!r}: use 'auto' or a whole number from 1",
        ))
    note = config.isolated_doctest_preamble_note
    if isinstance(note, str) and "{preamble}" not in note:
        problems.append((
            "isolated_doctest_preamble_note",
            f"isolated_doctest_preamble_note = {note!r}: a text must contain '{{preamble}}', "
            "or use True or False",
        ))
    conf_py = Path(app.confdir, "conf.py") if app.confdir else None
    for name, problem in problems:
        line = line_of(conf_py, name) if conf_py else None
        location = f"{conf_py}:{line or ''}" if conf_py else None
        warn("%s", problem, subtype=Subtype.CONFIG, location=location)
    if problems:
        raise ConfigError(
            f"{len(problems)} isolated_doctest setting(s) in conf.py cannot be used; "
            "see the warnings above"
        )


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

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        return cls(
            isolation=config.isolated_doctest_isolation,
            timeout=float(config.isolated_doctest_timeout),
            jobs=_jobs(config.isolated_doctest_jobs) or 1,
            start_method=start_method(config.isolated_doctest_start),
            cache=config.isolated_doctest_cache,
        )

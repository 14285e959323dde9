"""The sandbox's settings: ``isolated_doctest_sandbox``, the ``:sandbox:`` option
and the ``:doctest-sandbox:`` page field, read into a :class:`~._job.Sandbox`.

conf.py sets what every group gets; a page or a block may only ask for less
(the stricter of each part wins), so that a page from a contributor cannot
lift what conf.py sets.  The environment is conf.py's alone.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinxext.isolated_doctest._job import DEFAULT_ENV, NO_SANDBOX, Sandbox
from sphinxext.isolated_doctest._shared import Subtype, line_of, warn

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx

PARTS = ("env", "network", "memory", "disk", "cpu")
#: The page metadata field, and where its parsed value is kept on the doctree.
METADATA_FIELD = "doctest-sandbox"
DOCTREE_ATTRIBUTE = "isolated_doctest_sandbox"
#: The parts a page or a block may set (the environment is conf.py's only).
OPTION_PARTS = ("network", "memory", "disk", "cpu")
_UNITS = {"": 1, "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_SWITCH = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def config_problems(value: object) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The usable parts of an ``isolated_doctest_sandbox`` value, and for each
    part that is not, its name (``""`` for the whole value) and what to use."""
    if not isinstance(value, Mapping):
        return {}, [("", "use a dict with any of 'env', 'network', 'memory', 'disk', 'cpu'")]
    good: dict[str, Any] = {}
    problems = []
    for part, setting in value.items():
        if part not in PARTS:
            problems.append(
                (part, "not a part of the sandbox: use 'env', 'network', 'memory', 'disk' or 'cpu'")
            )
        elif part == "env" and not (
            isinstance(setting, bool)
            or (isinstance(setting, list | tuple) and all(isinstance(n, str) for n in setting))
        ):
            problems.append((part, "use True (the default names), False (everything), or a "
                                   "list of names to pass as well ('*' matches anything)"))
        elif part == "network" and not isinstance(setting, bool):
            problems.append((part, "use True or False"))
        elif part in {"memory", "disk"} and setting is not None and not (
            isinstance(setting, int) and not isinstance(setting, bool) and setting > 0
        ):
            problems.append((part, "use a whole number of bytes from 1, or None for no limit"))
        elif part == "cpu" and setting is not None and not (_is_number(setting) and setting > 0):
            problems.append((part, "use a number of seconds above 0, or None for no limit"))
        else:
            good[part] = setting
    return good, problems


def from_config(value: Mapping[str, Any]) -> Sandbox:
    """The sandbox a checked ``isolated_doctest_sandbox`` sets."""
    env = value.get("env", False)
    names = None
    if env is True:
        names = DEFAULT_ENV
    elif env:
        names = (*DEFAULT_ENV, *(n for n in env if n not in DEFAULT_ENV))
    return Sandbox(
        env=names,
        network=value.get("network", True),
        memory=value.get("memory") or 0,
        disk=value.get("disk") or 0,
        cpu=value.get("cpu") or 0,
    )


def _size(text: str) -> int:
    match = _SIZE.fullmatch(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not a size: use bytes, or a number with K, M or G")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size < 1:
        raise ValueError(f"{text!r}: a limit must be at least one byte")
    return size


def parse_option(text: str) -> dict[str, Any]:
    """``network=off, memory=256M, disk=10M, cpu=5`` as the parts it sets.

    Raises ValueError, with what to write instead, for anything else.
    """
    parts: dict[str, Any] = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        name, equals, setting = (s.strip() for s in item.partition("="))
        name = name.lower()
        if not equals or name not in PARTS:
            raise ValueError(
                f"{item!r}: use PART=VALUE, with PART one of {', '.join(OPTION_PARTS)} "
                "(e.g. 'network=off, memory=256M')"
            )
        if name == "env":
            raise ValueError("the environment is set in conf.py only (isolated_doctest_sandbox)")
        if name == "network":
            if setting.lower() not in _SWITCH:
                raise ValueError(f"network={setting}: use on or off")
            parts[name] = _SWITCH[setting.lower()]
        elif name == "cpu":
            try:
                seconds = float(setting.lower().removesuffix("s"))
            except ValueError:
                seconds = 0
            if not seconds > 0:
                raise ValueError(f"cpu={setting}: use a number of seconds above 0")
            parts[name] = seconds
        else:
            parts[name] = _size(setting)
    if not parts:
        raise ValueError("no part given: use e.g. 'network=off, memory=256M'")
    return parts


def tighten(sandbox: Sandbox, parts: Mapping[str, Any]) -> Sandbox:
    """``sandbox``, with what ``parts`` (from a page or a block) asks for less."""
    return sandbox.tightened(Sandbox(
        network=parts.get("network", True),
        memory=parts.get("memory", 0),
        disk=parts.get("disk", 0),
        cpu=parts.get("cpu", 0),
    ))


def option(argument: str | None) -> dict[str, Any]:
    """The ``:sandbox:`` option's converter."""
    return parse_option(argument or "")


def read_page_field(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read``: check the page's ``:doctest-sandbox:`` field and keep
    what it sets on the doctree; a bad one is an error at its line, and the
    page runs with conf.py's sandbox alone."""
    docname = app.env.docname
    value = app.env.metadata[docname].get(METADATA_FIELD)
    if value is None:
        return
    try:
        doctree[DOCTREE_ATTRIBUTE] = parse_option(str(value))
    except ValueError as exc:
        line = line_of(Path(app.env.doc2path(docname)), f":{METADATA_FIELD}:") or 1
        warn(
            ":%s: %s: %s; this page runs with conf.py's sandbox alone, and the build fails",
            METADATA_FIELD, value, exc,
            subtype=Subtype.CONFIG, location=(docname, line), error=True,
        )
        app.statuscode = 1


@functools.cache
def network_problem() -> str | None:
    """Why no group can have a network namespace of its own here, or None if
    one can (found once per process, in a throw-away process)."""
    from sphinxext.isolated_doctest._pool import CHILD_SCRIPT

    try:
        probe = subprocess.run(
            [sys.executable, "-I", "-S", CHILD_SCRIPT, "probe-network"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {probe.returncode}"


def network_refusal(sandbox: Sandbox) -> str | None:
    """Why a group with this sandbox must not run, if it must not."""
    if sandbox.network or sandbox is NO_SANDBOX:
        return None
    problem = network_problem()
    if problem is None:
        return None
    return (
        "network is off for this group, and this system cannot give it a network "
        f"namespace of its own ({problem}): it is not run"
    )

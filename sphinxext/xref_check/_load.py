"""After intersphinx loaded the inventories: what loaded, what did not and why.

Intersphinx reports a failed inventory once, without its name and with no fix, and
tells nobody that a fallback location was used. Its log records are captured while it
loads (between two ``builder-inited`` listeners around its own) and turned into one
warning per inventory that names it, says why and says what to do.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sphinxext.xref_check._compat import inventory_project
from sphinxext.xref_check._installed import (
    Distribution,
    find_distribution,
    major_minor,
    shorten,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sphinx.util.typing import Inventory

_INTERSPHINX_LOGGER: Final = "sphinx.sphinx.ext.intersphinx"
_HEADER_V2: Final = b"# Sphinx inventory version 2"
_HEADER_V1: Final = b"# Sphinx inventory version 1"


class LoadCapture(logging.Handler):
    """Keep the text of every record intersphinx logs while it loads."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # a record that cannot format is no reason to stop the build
            self.messages.append(str(record.msg))

    def start(self) -> None:
        logging.getLogger(_INTERSPHINX_LOGGER).addHandler(self)

    def stop(self) -> None:
        logging.getLogger(_INTERSPHINX_LOGGER).removeHandler(self)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class InventoryStatus:
    """One ``intersphinx_mapping`` entry after loading."""

    name: str
    loaded: bool
    project: str = ""
    version: str = ""
    #: Top-level names (first dotted component) of its ``py`` entries.
    tops: frozenset[str] = frozenset()
    distribution: Distribution | None = None
    #: Why it did not load, and what to do; empty when it loaded.
    reason: str = ""
    #: The URL that failed when a snapshot stood in for it.
    snapshot_for: str = ""
    #: Why a local file it loaded from is damaged (Sphinx 7 reads what it can of
    #: a truncated file); empty when it is whole.
    damaged: str = ""

    def describe(self) -> str:
        if self.project:
            return f"inventory {self.name!r} ({self.project} {self.version})".replace(" )", ")")
        return f"inventory {self.name!r}"


def diagnose_inventory_bytes(data: bytes) -> str | None:
    """Why *data* is not a readable inventory, or None when it looks fine."""
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    if first == _HEADER_V1:
        return None
    if first != _HEADER_V2:
        shown = first[:60].decode("utf-8", "replace")
        return (
            f"it is not a Sphinx inventory: its first line is {shown!r} instead of "
            f"'# Sphinx inventory version 2' (an HTML or error page saved as objects.inv?)"
        )
    lines = data.split(b"\n", 4)
    if len(lines) < 5:
        return "it is truncated: the header is incomplete"
    try:
        zlib.decompress(lines[4])
    except zlib.error as exc:
        return f"its compressed part is corrupt or truncated (zlib: {exc})"
    return None


def _location_text(uri: str, location: str | None) -> str:
    return posixpath.join(uri, "objects.inv") if location is None else location


def _why(*, locations: Iterable[str], srcdir: Path, messages: Iterable[str]) -> tuple[str, str]:
    """``(why, fix)`` for an inventory none of whose locations loaded."""
    reasons: list[str] = []
    remote = False
    for location in locations:
        if "://" in location:
            remote = True
            lines = [
                line.strip()
                for message in messages
                for line in message.splitlines()
                if repr(location) in line
            ]
            reason = _fetch_reason(lines[0], location) if lines else None
            reasons.append(reason or f"{location} could not be fetched")
            continue
        path = srcdir / location
        try:
            data = path.read_bytes()
        except OSError as exc:
            reasons.append(f"{path} cannot be read ({exc.strerror or exc})")
            continue
        problem = diagnose_inventory_bytes(data)
        reasons.append(f"{path}: {problem or 'it could not be parsed'}")
    fix = (
        "check the URL and the network, or build from a pinned snapshot "
        '(xref_check_snapshot, made by "python -m sphinxext.xref_check snapshot")'
        if remote
        else "point intersphinx_mapping at a valid objects.inv, or download it again"
    )
    return "; ".join(reasons), fix


def _fetch_reason(line: str, location: str) -> str:
    """Intersphinx's line for a location that failed, without the long exception text.

    It ends with the exception's text, which for a connection error repeats the
    host, the URL and the nested causes in hundreds of characters.
    """
    _head, sep, detail = line.partition(" due to ")
    if not sep:
        return shorten(line)
    kind = detail.split(":", 1)[0].strip()
    kind = kind.removeprefix("<class '").removesuffix("'>").rpartition(".")[2]
    return shorten(f"{location} could not be fetched ({kind or 'error'})")


#: Names an inventory of Python's own documentation covers: the standard library
#: and the builtins. Which ones a failed inventory would have covered is not known
#: otherwise.
def _python_tops() -> frozenset[str]:
    import builtins

    return frozenset(sys.stdlib_module_names) | frozenset(dir(builtins))


def _is_python_docs(name: str, uri: str) -> bool:
    return name.lower() in {"python", "py", "python3", "cpython"} or "docs.python.org" in uri


def failed_tops(*, name: str, uri: str, distribution: Distribution | None) -> frozenset[str]:
    """The top-level names the references into a failed inventory start with."""
    if _is_python_docs(name, uri):
        return _python_tops()
    if distribution is not None:
        return distribution.top_levels
    return frozenset({name})


def inspect_inventories(
    *,
    projects: Mapping[str, tuple[str, tuple[str | None, ...]]],
    named_inventory: Mapping[str, Inventory],
    messages: list[str],
    srcdir: Path,
    distributions: Mapping[str, str],
    snapshot_files: Mapping[str, Path],
    withheld: Mapping[str, tuple[str, str]] = {},
) -> list[InventoryStatus]:
    """The status of every named ``intersphinx_mapping`` entry, as plain data.

    *projects* is ``{name: (uri, locations)}``, as
    :func:`~sphinxext.xref_check._compat.intersphinx_projects` gives it.
    """
    statuses = []
    for name, (uri, why) in sorted(withheld.items()):
        guessed = find_distribution(
            inv_name=name, project="", modules=(), configured=distributions.get(name)
        )
        statuses.append(
            InventoryStatus(
                name=name,
                loaded=False,
                distribution=guessed,
                tops=failed_tops(name=name, uri=uri, distribution=guessed),
                reason=f"{why}. Fix: take the snapshot again",
            )
        )
    for name, (uri, raw_locations) in sorted(projects.items()):
        locations = [_location_text(uri, loc) for loc in raw_locations]
        snapshot = snapshot_files.get(name)
        inventory = named_inventory.get(name)
        if inventory is None:
            guessed = find_distribution(
                inv_name=name, project="", modules=(), configured=distributions.get(name)
            )
            why, fix = _why(locations=locations, srcdir=srcdir, messages=messages)
            statuses.append(
                InventoryStatus(
                    name=name,
                    loaded=False,
                    distribution=guessed,
                    tops=failed_tops(name=name, uri=uri, distribution=guessed),
                    reason=f"{why}. Fix: {fix}",
                )
            )
            continue
        project, version = inventory_project(inventory)
        tops = frozenset(
            target.partition(".")[0]
            for objtype, items in inventory.items()
            if objtype.startswith("py:")
            for target in items
        )
        modules = sorted(inventory.get("py:module", {}))
        dist = find_distribution(
            inv_name=name, project=project, modules=modules, configured=distributions.get(name)
        )
        snapshot_for = ""
        if snapshot is not None:
            failed = [
                loc
                for loc in locations
                if "://" in loc and any(repr(loc) in message for message in messages)
            ]
            if failed:
                snapshot_for = failed[0]
        statuses.append(
            InventoryStatus(
                name=name,
                loaded=True,
                project=project,
                version=version,
                tops=tops,
                distribution=dist,
                snapshot_for=snapshot_for,
                damaged=_damage(locations, srcdir),
            )
        )
    return statuses


def _damage(locations: Iterable[str], srcdir: Path) -> str:
    """``"<file>: why"`` for the first local file of *locations* that reads but is
    not a whole inventory; ``""`` if there is none."""
    for location in locations:
        if "://" in location:
            continue
        path = srcdir / location
        try:
            data = path.read_bytes()
        except OSError:
            continue
        problem = diagnose_inventory_bytes(data)
        return f"{path}: {problem}" if problem else ""
    return ""


def version_skew(status: InventoryStatus, *, python_version: tuple[int, int]) -> str | None:
    """A message when the inventory's major.minor differs from what is installed."""
    documented = major_minor(status.version)
    if documented is None:
        return None
    if status.distribution is not None:
        installed_name = status.distribution.name
        installed_version = status.distribution.version
        installed = major_minor(installed_version)
    elif status.project.lower() == "python":
        installed_name = "Python"
        installed_version = "{}.{}".format(*python_version)
        installed = python_version
    else:
        return None
    if installed is None or installed == documented:
        return None
    return (
        f"inventory {status.name!r} is for {status.project} {status.version} but "
        f"{installed_name} {installed_version} is installed; link to the documentation "
        f"of the installed version in intersphinx_mapping[{status.name!r}]"
    )

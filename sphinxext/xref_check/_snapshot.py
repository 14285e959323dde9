"""Pinned inventories for offline builds: take a snapshot, verify it, build from it.

``FOLDER/<name>.inv`` holds each inventory's bytes as fetched; ``FOLDER/inventories.lock``
(JSON) records for each its name, URL, project, version, sha256 and fetch time.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sphinxext.xref_check._compat import intersphinx_projects
from sphinxext.xref_check._load import diagnose_inventory_bytes

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sphinx.config import Config

    from sphinxext.xref_check._config import XrefConfig

LOCK_NAME: Final = "inventories.lock"
RETAKE: Final = "python -m sphinxext.xref_check snapshot -c {confdir} -o {folder}"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class LockEntry:
    name: str
    url: str
    project: str
    version: str
    sha256: str
    fetched_at: str
    file: str


class SnapshotError(Exception):
    """A snapshot cannot be taken or used; the message says why and what to do."""


def read_lock(folder: Path) -> list[LockEntry]:
    path = folder / LOCK_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [LockEntry(**item) for item in raw["inventories"]]
    except OSError as exc:
        msg = f"no snapshot lock file at {path} ({exc.strerror or exc})"
        raise SnapshotError(msg) from None
    except (ValueError, KeyError, TypeError) as exc:
        msg = f"{path} is not a valid snapshot lock file ({exc!r})"
        raise SnapshotError(msg) from None


def verify(folder: Path, entries: list[LockEntry]) -> dict[str, str]:
    """Inventory name -> what is wrong, for each snapshot file whose sha256
    differs from the lock file."""
    problems = {}
    for entry in entries:
        path = folder / entry.file
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            problems[entry.name] = f"{path} cannot be read ({exc.strerror or exc})"
            continue
        if actual != entry.sha256:
            problems[entry.name] = (
                f"{path} does not match {folder / LOCK_NAME}: expected sha256 "
                f"{entry.sha256}, got {actual}"
            )
    return problems


def _inventory_url(uri: str, locations: tuple[str | None, ...]) -> str:
    for location in locations:
        if location is None:
            return posixpath.join(uri, "objects.inv")
        if "://" in location:
            return location
    first = locations[0] if locations else None
    return first if first is not None else posixpath.join(uri, "objects.inv")


def _header(data: bytes, field: str) -> str:
    for line in data.split(b"\n", 4)[1:3]:
        text = line.decode("utf-8", "replace")
        if text.startswith(f"# {field}: "):
            return text[len(field) + 4 :].strip()
    return ""


def _fetch(url: str, *, base: Path, timeout: float) -> bytes:
    if "://" not in url:
        return (base / url).read_bytes()
    import urllib.request  # slow to import; only the snapshot command needs it

    with urllib.request.urlopen(url, timeout=timeout) as response:
        data: bytes = response.read()
        return data


def take_snapshot(
    *,
    mapping: Mapping[str, tuple[str, tuple[str | None, ...]]],
    folder: Path,
    base: Path,
    timeout: float = 30.0,
) -> tuple[list[LockEntry], list[str]]:
    """Fetch every inventory into *folder* and write the lock file.

    Returns the entries written and one message per inventory that failed. An
    inventory that failed keeps its previous snapshot entry, if any.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        previous = {e.name: e for e in read_lock(folder)}
    except SnapshotError:
        previous = {}
    entries: dict[str, LockEntry] = {}
    errors = []
    for name, (uri, locations) in sorted(mapping.items()):
        url = _inventory_url(uri, locations)
        try:
            data = _fetch(url, base=base, timeout=timeout)
        except Exception as exc:
            errors.append(f"{name}: {url} could not be fetched ({exc})")
            if name in previous:
                entries[name] = previous[name]
            continue
        problem = diagnose_inventory_bytes(data)
        if problem is not None:
            errors.append(f"{name}: {url} is not usable: {problem}")
            if name in previous:
                entries[name] = previous[name]
            continue
        file = f"{name}.inv"
        (folder / file).write_bytes(data)
        entries[name] = LockEntry(
            name=name,
            url=url,
            project=_header(data, "Project"),
            version=_header(data, "Version"),
            sha256=hashlib.sha256(data).hexdigest(),
            fetched_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            file=file,
        )
    lock = {"inventories": [dataclasses.asdict(e) for e in entries.values()]}
    (folder / LOCK_NAME).write_text(json.dumps(lock, indent=2) + "\n", encoding="utf-8")
    return list(entries.values()), errors


def apply_snapshot(
    *, config: Config, xref: XrefConfig, confdir: Path
) -> tuple[dict[str, Path], list[str], dict[str, tuple[str, str]]]:
    """Verify the snapshot, then add its files to ``intersphinx_mapping``.

    Runs at ``config-inited`` after intersphinx normalised the mapping. Returns the
    snapshot file of each inventory it applies to, what is wrong with the snapshot
    (each problem, then what to do), empty if nothing is, and the inventories
    withheld: ``{name: (uri, why)}``. A file that does not match the lock is
    never read. With ``"fallback"`` its inventory is still fetched from its URL;
    with ``"only"`` the network is never used, so the inventory is taken out of
    ``intersphinx_mapping`` and the build goes on without it (without a lock
    file, none can be verified: the build goes on without any).
    """
    folder = xref.snapshot
    if folder is None:
        return {}, [], {}
    retake = RETAKE.format(confdir=confdir, folder=folder)
    mapping = config.intersphinx_mapping
    projects = intersphinx_projects(mapping)
    try:
        entries = read_lock(folder)
    except SnapshotError as exc:
        withheld = {}
        if xref.snapshot_mode == "only":
            why = f"{exc}, and snapshot mode \"only\" never uses the network"
            withheld = _withhold(mapping, projects, dict.fromkeys(projects, why))
        return {}, [f"{exc}; create it with: {retake}"], withheld
    damaged = verify(folder, entries)
    files: dict[str, Path] = {}
    for entry in entries:
        if entry.name not in projects or entry.name in damaged:
            continue
        name = entry.name
        uri, locations = projects[name]
        path = (folder / entry.file).resolve()
        if xref.snapshot_mode == "only":
            new_locations: tuple[str | None, ...] = (str(path),)
        else:
            new_locations = (*locations, str(path))
        mapping[entry.name] = (name, (uri, new_locations))
        files[entry.name] = path
    withheld = {}
    if xref.snapshot_mode == "only":
        listed = {entry.name for entry in entries}
        reasons = {name: f"{problem}; it was not used" for name, problem in damaged.items()}
        for name in projects:
            if name not in listed:
                reasons[name] = f"{folder / LOCK_NAME} has no entry for it"
        withheld = _withhold(mapping, projects, reasons)
    if not damaged:
        return files, [], withheld
    return files, [
        *damaged.values(),
        f"the inventory snapshot in {folder} does not match its lock file; "
        f"take it again with: {retake}",
    ], withheld


def _withhold(
    mapping: dict[str, object],
    projects: Mapping[str, tuple[str, tuple[str | None, ...]]],
    reasons: Mapping[str, str],
) -> dict[str, tuple[str, str]]:
    """Take the inventories in *reasons* out of *mapping*: ``{name: (uri, why)}``."""
    withheld = {}
    for name, why in reasons.items():
        if name in projects:
            mapping.pop(name, None)
            withheld[name] = (projects[name][0], why)
    return withheld

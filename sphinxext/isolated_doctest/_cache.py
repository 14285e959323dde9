"""Results of earlier runs, keyed by everything that can change a group's outcome.

One file per build folder: read once before the run, written once after it
(a file per result would cost a file system round trip per group).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinxext.isolated_doctest._job import Job, RunSettings
    from sphinxext.isolated_doctest._result import JobResult

#: Bump when the format of cached results changes.
FORMAT = 2


def installed_distributions() -> list[str]:
    """``name-version`` of every distribution on ``sys.path``, from folder names
    alone (``*.dist-info``, ``*.egg-info``), which is all a cache key needs."""
    found = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found += [n for n in names if n.endswith((".dist-info", ".egg-info"))]
    return sorted(found)


def environment_fingerprint() -> str:
    """The interpreter, the working folder and the installed distributions, hashed."""
    text = "\n".join([sys.version, sys.executable, os.getcwd(), *installed_distributions()])
    return hashlib.sha256(text.encode()).hexdigest()


def job_key(job: Job, settings: RunSettings) -> str:
    """What the job's outcome depends on, hashed (its place in the build aside)."""
    # A timeout can turn a pass into a failure, so it is part of the key too.
    timeouts = [spec.timeout for spec in job.groups]
    wire = job.wire(settings)
    # sphinx-build's arguments (the output folder, -q...) change from one
    # build to the next; an example that depends on them is rare.
    del wire["argv"]
    text = json.dumps([wire, timeouts], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """Job results by :func:`job_key`, kept in ``folder/results.json``."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / "results.json"
        self._salt = f"{FORMAT}:{environment_fingerprint()}"
        self._entries = self._read()
        self._used: set[str] = set()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._path.read_text("utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("salt") == self._salt:
            entries: dict[str, dict[str, Any]] = data.get("results", {})
            return entries
        return {}

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._used.add(key)
        return entry

    def put(self, key: str, result: JobResult) -> None:
        """Keep a result; faults (timeouts, crashes) are not worth repeating."""
        if result.fault is None:
            self._entries[key] = result.to_json()
            self._used.add(key)

    def save(self, *, complete: bool) -> None:
        """Write the cache; after a build of every page, drop what it no longer has,
        else keep what another run (a parallel one, say) has written since."""
        if complete:
            self._entries = {k: v for k, v in self._entries.items() if k in self._used}
        else:
            self._entries = {**self._read(), **self._entries}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_suffix(".tmp")
        data = {"salt": self._salt, "results": self._entries}
        temporary.write_text(json.dumps(data), encoding="utf-8")
        temporary.replace(self._path)

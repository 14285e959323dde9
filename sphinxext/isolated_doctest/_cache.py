"""Results of earlier runs, keyed by everything that can change a group's outcome."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinxext.isolated_doctest._job import Job, RunSettings
    from sphinxext.isolated_doctest._result import JobResult

#: Bump when the format of cached results changes.
FORMAT = 1


def environment_fingerprint() -> str:
    """The interpreter and every installed distribution's version, hashed."""
    dists = sorted(
        f"{d.metadata['Name']}=={d.version}"
        for d in metadata.distributions()
        if d.metadata["Name"]
    )
    text = "\n".join([sys.version, sys.executable, os.getcwd(), *dists])
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """One JSON file per job under ``folder``, named by the job's key."""

    def __init__(self, folder: Path, *, settings: RunSettings) -> None:
        self._folder = folder
        self._settings = settings
        self._salt = f"{FORMAT}:{environment_fingerprint()}"

    def key(self, job: Job) -> str:
        wire = job.wire(self._settings)
        text = json.dumps([self._salt, wire], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self._folder / f"{key}.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data

    def put(self, key: str, result: JobResult) -> None:
        """Keep a result; faults (timeouts, crashes) are not worth repeating."""
        if result.fault is not None:
            return
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{key}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(result.to_json()), encoding="utf-8")
        temporary.replace(path)

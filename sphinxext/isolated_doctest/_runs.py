"""Jobs to results for a runner that asks for them one group at a time.

The builder submits a build's jobs and collects every result; the pytest
plugin submits what it is about to run and then waits for one group.  Both
use the same executor and the same result cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from sphinxext.isolated_doctest._cache import ResultCache, job_key
from sphinxext.isolated_doctest._pool import Executor
from sphinxext.isolated_doctest._result import JobResult

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable

    from sphinxext.isolated_doctest._config import Settings
    from sphinxext.isolated_doctest._job import Job, Preamble, RunSettings

    _Stream = Generator[tuple[int, JobResult], None, None]


class Runs:
    """Submit jobs early, wait for each result when it is needed.

    Jobs are told apart by their ``index``.  Nothing starts before the first
    :meth:`submit`; :meth:`close` kills whatever still runs.
    """

    def __init__(
        self, *, settings: Settings, run_settings: RunSettings, cache_folder: Path | None
    ) -> None:
        self._settings = settings
        self._run_settings = run_settings
        self._cache = ResultCache(cache_folder) if cache_folder is not None else None
        self._executor: Executor | None = None
        self._stream: _Stream | None = None
        self._tickets: dict[int, int] = {}  # job index -> ticket
        self._keys: dict[int, str] = {}  # ticket -> cache key
        self._results: dict[int, JobResult] = {}  # job index -> result

    def submit(self, jobs: Iterable[Job]) -> None:
        """Start these jobs (those not started yet) as soon as slots are free."""
        for job in jobs:
            if job.error is not None or job.index in self._tickets or job.index in self._results:
                continue
            key = None
            if self._cache is not None:
                key = job_key(job, self._run_settings)
                cached = self._cache.get(key)
                if cached is not None:
                    self._results[job.index] = JobResult.from_cache(job.index, cached)
                    continue
            if self._executor is None:
                self._executor = Executor(
                    settings=self._run_settings,
                    jobs=self._settings.jobs,
                    start_method=self._settings.start_method,
                )
            ticket = self._executor.submit(job)
            self._tickets[job.index] = ticket
            if key is not None:
                self._keys[ticket] = key
        if self._executor is not None:
            self._executor.pump()

    def result(self, job: Job) -> JobResult | None:
        """The job's result, once it has one (None for a job that cannot run)."""
        if job.error is not None:
            return None
        self.submit([job])
        ticket = self._tickets.get(job.index)
        while job.index not in self._results:
            assert self._executor is not None and ticket is not None
            if self._stream is None:
                # One generator for the whole run: it ends (and closes the
                # executor) only once nothing submitted is left.
                self._stream = cast("_Stream", self._executor.results())
            done, result = next(self._stream)
            if self._cache is not None and done in self._keys:
                self._cache.put(self._keys[done], result)
            self._results[result.index] = result
        return self._results[job.index]

    @property
    def server_stderr(self) -> list[tuple[Preamble, str]]:
        return [] if self._executor is None else list(self._executor.server_stderr)

    def close(self) -> None:
        """Kill what still runs."""
        if self._stream is not None:
            self._stream.close()
        if self._executor is not None:
            self._executor.close()

    def save_cache(self) -> None:
        """Add this run's results to the cache file (others may have added theirs)."""
        if self._cache is not None:
            self._cache.save(complete=False)

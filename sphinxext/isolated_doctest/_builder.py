"""The ``doctest`` builder: collect jobs, run them in children, report as Sphinx does."""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.builders import Builder
from sphinx.errors import SphinxError
from sphinx.locale import __
from sphinx.util.console import bold  # type: ignore[attr-defined]
from sphinx.util.display import status_iterator

from sphinxext.isolated_doctest._cache import ResultCache, job_key
from sphinxext.isolated_doctest._collect import EmptyBlock, collect, warn_empty
from sphinxext.isolated_doctest._config import Settings
from sphinxext.isolated_doctest._directives import config_preamble
from sphinxext.isolated_doctest._files import write_json, write_junit
from sphinxext.isolated_doctest._job import RunSettings, preamble_problem
from sphinxext.isolated_doctest._pool import Executor
from sphinxext.isolated_doctest._report import (
    Counts,
    DocumentReport,
    GroupOutcome,
    OutputRelay,
    present,
)
from sphinxext.isolated_doctest._result import JobResult
from sphinxext.isolated_doctest._shared import LOGGER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set

    from docutils import nodes
    from sphinx.application import Sphinx

    from sphinxext.isolated_doctest._job import Job

SLOWEST = 5


class SelectionError(SphinxError):
    """A selected group (see :meth:`IsolatedDocTestBuilder.select`) is not on its page."""

    category = "Not found"


def _failed(result: JobResult) -> bool:
    return result.fault is not None or any(
        (e["t"] == "group_done" and not e["ok"]) or e["t"] == "preamble_error"
        for e in result.events
    )


@dataclasses.dataclass(eq=False)
class _Page:
    """A page collected while reading: its jobs (numbered from 0), and for each
    job its key and, if it was started, its ticket."""

    jobs: list[Job]
    empty: list[EmptyBlock]
    keys: dict[int, str] = dataclasses.field(default_factory=dict)
    tickets: dict[int, int] = dataclasses.field(default_factory=dict)


class IsolatedDocTestBuilder(Builder):
    """Runs the documentation's doctests, each group in a fresh process."""

    name = "doctest"
    epilog = __(
        "Testing of doctests in the sources finished, look at the "
        "results in %(outdir)s/output.txt."
    )

    def init(self) -> None:
        self.settings = Settings.from_config(self.config)
        if self.config.isolated_doctest_start == "auto" and self.settings.start_method == "spawn":
            LOGGER.info(
                __("isolated_doctest_start = 'auto': no fork server here (it needs Linux "
                   "5.3 or later), so every group starts a fresh interpreter")
            )
        # What the reference reads when it starts; the rest is read when the
        # tests run (see _settings_now).
        self.run_settings = RunSettings.from_config(self.config)
        #: The settings the pages read ahead ran with, once the first was.
        self._ahead_settings: tuple[RunSettings, str] | None = None
        self.relay = OutputRelay()
        self.executor = Executor(
            settings=self.run_settings,
            jobs=self.settings.jobs,
            start_method=self.settings.start_method,
        )
        self.cache: ResultCache | None = None
        if self.settings.cache:
            self.cache = ResultCache(Path(self.doctreedir, "isolated_doctest"))
        #: ``-E``: run everything, whatever the cache holds.
        self._fresh = bool(getattr(self._sphinx, "_fresh_env_used", False))
        #: Pages collected (and their jobs submitted) while Sphinx reads.
        self._ahead: dict[str, _Page] = {}
        self._reading_ahead = True
        #: The groups to test, by page (None: all of them): see select().
        self._only: dict[str, frozenset[str] | None] | None = None
        #: Called with (jobs ended, jobs started) as each job ends.
        self.progress: Callable[[int, int], None] | None = None
        self._pid = os.getpid()
        # Most groups run after conf.py's preamble: start its fork server while
        # Sphinx reads the pages.
        preamble = config_preamble(self._sphinx)
        if not preamble_problem(preamble.value):
            self.executor.prepare(preamble, self.settings.sandbox)
        self.counts = Counts()
        self.outcomes: list[GroupOutcome] = []
        self.started = time.monotonic()
        date = time.strftime("%Y-%m-%d %H:%M:%S")
        self.outfile = self.outdir.joinpath("output.txt").open("w", encoding="utf-8")
        line = "=" * len(date)
        self.outfile.write(
            f"Results of doctest builder run on {date}\n"
            f"=================================={line}\n"
        )

    def __del__(self) -> None:
        if hasattr(self, "outfile"):
            self.outfile.close()

    def _out(self, text: str) -> None:
        LOGGER.info(text, nonl=True)
        self.relay.interrupted(0)  # between the parts of the children's stdout
        self.outfile.write(text)

    def _warn_out(self, text: str) -> None:
        if self._quiet():
            LOGGER.warning(text)
            self.relay.interrupted(1)
        else:
            LOGGER.info(text, nonl=True)
            self.relay.interrupted(0)
        self.outfile.write(text)

    def _settings_now(self) -> tuple[RunSettings, str]:
        """The settings as the reference reads them when it tests (conf.py's
        ``builder-inited`` handlers, say, may have changed them since ``init``),
        and the one that decides which blocks are tests."""
        config = self.config
        settings = dataclasses.replace(
            self.run_settings,
            global_setup=config.doctest_global_setup,
            global_cleanup=config.doctest_global_cleanup,
            fail_fast=config.doctest_fail_fast,
        )
        return settings, config.doctest_test_doctest_blocks

    def _quiet(self) -> bool:
        """Whether failures go to the warning stream, as the reference decides it."""
        verbosity = getattr(self.config, "verbosity", None)
        if verbosity is not None:  # Sphinx 8 and later
            return bool(verbosity < 0)
        app = self._sphinx  # Sphinx 7.x
        return bool(getattr(app, "quiet", False) or getattr(app, "warningiserror", False))

    def get_target_uri(self, docname: str, typ: str | None = None) -> str:
        return ""

    def get_outdated_docs(self) -> set[str]:
        return self.env.found_docs

    if not hasattr(Builder, "write_documents"):  # Sphinx 7.x drives builders via write()

        def write(  # type: ignore[misc, override]
            self,
            build_docnames: Iterable[str] | None,
            updated_docnames: Sequence[str],
            method: str = "update",
        ) -> None:
            # As Sphinx 7's doctest builder: all documents sorted, or the
            # given ones in the order given.
            if build_docnames is None:
                self._test_documents(sorted(self.env.all_docs))
            else:
                self._test_documents(list(build_docnames))

    @property
    def _sphinx(self) -> Sphinx:
        """The application (``_app`` since Sphinx 8.1, ``app`` before)."""
        app: Sphinx = getattr(self, "_app", None) or self.app
        return app

    def write_documents(self, docnames: Set[str]) -> None:
        self._test_documents(sorted(docnames))

    def read_ahead(self, docname: str, doctree: nodes.document) -> None:
        """Submit a page's jobs as soon as Sphinx has read it (``doctree-read``).

        They run while Sphinx reads the other pages, and the write phase takes
        the page from here instead of loading its doctree again.
        """
        if os.getpid() != self._pid or not self._start_reading_ahead():
            return  # a parallel reader is another process; fail-fast runs in order
        empty: list[EmptyBlock] = []
        jobs = collect(
            env=self.env, config=self.config, settings=self.settings, docname=docname,
            first_index=0, doctree=doctree, empty=empty,
        )
        page = _Page(jobs=jobs, empty=empty)
        for job in jobs:
            if job.error is not None:
                continue
            if self.cache is not None and not self._fresh:
                key = page.keys[job.index] = job_key(job, self.run_settings)
                if self.cache.get(key) is not None:
                    continue
            # Keys not needed now are made in the write phase, while the
            # children run: every moment spent here delays the reading.
            page.tickets[job.index] = self.executor.submit(job)
        previous = self._ahead.pop(docname, None)
        if previous is not None:  # read twice: keep the last
            self.executor.cancel(previous.tickets.values())
        self._ahead[docname] = page
        self.executor.pump()

    def read_ahead_merged(self, docnames: Set[str]) -> None:
        """Under ``-j``, other processes read the pages: submit a chunk's jobs
        when it comes back (``env-merge-info``), from the doctrees they pickled."""
        if self._start_reading_ahead():  # else the write phase loads each doctree once
            for docname in sorted(docnames):
                self.read_ahead(docname, self.env.get_doctree(docname))

    def select(self, pages: Mapping[str, frozenset[str] | None]) -> None:
        """Test only these groups (by page; None for all of a page's groups).

        The pages are still read as usual, but their groups start only once
        the selection has been checked against them: a group not on its page
        stops the build with :class:`SelectionError` before anything runs.
        """
        self._only = dict(pages)
        self._reading_ahead = False

    def _selected(self, jobs: list[Job]) -> list[Job]:
        assert self._only is not None
        kept: list[Job] = []
        found: dict[str, set[str]] = {}
        for job in jobs:
            if job.docname not in self._only:
                continue
            names = self._only[job.docname]
            specs = tuple(g for g in job.groups if names is None or g.name in names)
            found.setdefault(job.docname, set()).update(g.name for g in job.groups)
            if specs:
                kept.append(job if specs == job.groups else dataclasses.replace(job, groups=specs))
        for docname, names in self._only.items():
            missing = sorted((names or set()) - found.get(docname, set()))
            if missing:
                groups = ", ".join(sorted(found.get(docname, ()))) or "none"
                raise SelectionError(
                    f"page {docname!r} has no doctest group {missing[0]!r} (its groups: {groups})"
                )
        return kept

    def _start_reading_ahead(self) -> bool:
        """Whether to run pages as they are read; the settings they run with
        are read on the first (after conf.py's ``builder-inited`` handlers)."""
        if self._ahead_settings is None:
            self._ahead_settings = self._settings_now()
            self.run_settings = self._ahead_settings[0]
            self.executor.configure(self.run_settings)
            # fail-fast runs in order; a selection starts once checked
            self._reading_ahead = self._reading_ahead and not self.run_settings.fail_fast
        return self._reading_ahead

    def _cached(self, key: str) -> dict[str, Any] | None:
        if self.cache is None or self._fresh:
            return None
        return self.cache.get(key)

    def _test_documents(self, docnames: list[str]) -> None:
        LOGGER.info(bold(__("running tests...")))
        now = self._settings_now()
        if self._ahead_settings is not None and now != self._ahead_settings:
            # Changed since the pages were read: what started then runs again.
            self.executor.cancel(
                t for page in self._ahead.values() for t in page.tickets.values()
            )
            self._ahead.clear()
        self.run_settings = now[0]
        self.executor.configure(self.run_settings)
        jobs: list[Job] = []
        keys: dict[int, str] = {}
        tickets: dict[int, Job] = {}
        for docname in docnames:
            first = len(jobs)
            page = self._ahead.pop(docname, None)
            if page is None:
                jobs += collect(
                    env=self.env,
                    config=self.config,
                    settings=self.settings,
                    docname=docname,
                    first_index=first,
                )
                continue
            warn_empty(page.empty)
            for job in page.jobs:
                own = job.index
                job = dataclasses.replace(job, index=first + own)
                jobs.append(job)
                if own in page.keys:
                    keys[job.index] = page.keys[own]
                if own in page.tickets:
                    tickets[page.tickets[own]] = job
        if self._only is not None:
            jobs = self._selected(jobs)
        # Read ahead but not to be tested (pages not named on the command line).
        self.executor.cancel(t for page in self._ahead.values() for t in page.tickets.values())
        self._ahead.clear()
        results = self._run(jobs, keys, tickets)
        if self.cache is not None:
            self.cache.save(complete=self.env.found_docs.issubset(docnames))
        self._report(jobs, results)

    def _run(
        self, jobs: list[Job], keys: dict[int, str], tickets: dict[int, Job]
    ) -> dict[int, JobResult]:
        """Every job's result: from the cache, from a run started while
        reading (``tickets``), or from a run started now."""
        results: dict[int, JobResult] = {}
        running = {job.index for job in tickets.values()}
        for job in jobs:
            if job.error is not None or job.index in running:
                continue
            cached = None
            if self.cache is not None:  # no keys without a cache
                key = keys.get(job.index)
                if key is None:
                    key = keys[job.index] = job_key(job, self.run_settings)
                cached = self._cached(key)
            if cached is not None:
                results[job.index] = JobResult.from_cache(job.index, cached)
            else:
                tickets[self.executor.submit(job)] = job
        if tickets:
            self._execute(tickets, results, keys)
        return results

    def _execute(
        self, tickets: dict[int, Job], results: dict[int, JobResult], keys: dict[int, str]
    ) -> None:
        executor = self.executor
        cache = self.cache
        fail_fast = self.config.doctest_fail_fast
        left = Counter(job.docname for job in tickets.values())
        progress = self.progress

        def finished_pages() -> Iterator[str]:
            for ended_jobs, (ticket, result) in enumerate(executor.results(), start=1):
                if progress is not None:
                    progress(ended_jobs, len(tickets))
                job = tickets[ticket]
                if result.index != job.index:  # read ahead, numbered on its own
                    result = dataclasses.replace(result, index=job.index)
                results[job.index] = result
                if cache is not None:
                    key = keys.get(job.index) or job_key(job, self.run_settings)
                    cache.put(key, result)
                ended = [job]
                if fail_fast and _failed(result):
                    # As in one process: nothing after the first failure runs.
                    later = [t for t, j in tickets.items() if j.index > job.index]
                    ended += [tickets[t] for t in executor.cancel(later)]
                for page_job in ended:
                    left[page_job.docname] -= 1
                    if not left[page_job.docname]:
                        yield page_job.docname

        for _docname in status_iterator(
            finished_pages(),
            __("testing pages... "),
            "darkgreen",
            len(left),
            self._sphinx.verbosity,
        ):
            pass
        for preamble, text in executor.server_stderr:
            # Written once, where the preamble ran, for every group after it.
            self.relay.write_preamble(1, preamble, text)

    def _report(self, jobs: list[Job], results: dict[int, JobResult]) -> None:
        fail_fast = self.config.doctest_fail_fast
        show_successes = self.config.doctest_show_successes
        for docname, doc_jobs in itertools.groupby(jobs, key=lambda j: j.docname):
            page = list(doc_jobs)
            if not any(present(job, results.get(job.index)) for job in page):
                continue
            if show_successes:
                self._out(f"\nDocument: {docname}\n----------{'-' * len(docname)}\n")
            report = DocumentReport(
                flags=self.run_settings.optionflags, show_successes=show_successes,
                relay=self.relay,
            )
            success = True
            for job in page:
                result = results.get(job.index)
                if result is None and job.error is None:
                    continue  # not run: an earlier failure stopped the run
                ok = report.replay(job, result, self._warn_out)
                if not ok:
                    success = False
                    if fail_fast:
                        break
            report.summarize(self._out, self.counts)
            self.outcomes += report.outcomes
            if not success and fail_fast:
                break

    def finish(self) -> None:
        def s(v: int) -> str:
            return "s" if v != 1 else ""

        counts = self.counts
        failures = counts.failures
        header = "Doctest summary"
        if failures["test"] or failures["setup"] or failures["cleanup"]:
            self._sphinx.statuscode = 1
            if self.config.doctest_fail_fast:
                header = f"{header} (exiting after first failed test)"
        underline = "=" * len(header)
        tries = counts.tries["test"]
        self._out(
            f"""
{header}
{underline}
{tries:5} test{s(tries)}
{failures["test"]:5} failure{s(failures["test"])} in tests
{failures["setup"]:5} failure{s(failures["setup"])} in setup code
{failures["cleanup"]:5} failure{s(failures["cleanup"])} in cleanup code
"""
        )
        self.outfile.close()
        elapsed = time.monotonic() - self.started
        write_json(Path(self.outdir, "output.json"), self.outcomes, counts, elapsed)
        write_junit(Path(self.outdir, "junit.xml"), self.outcomes, elapsed)
        self._show_slowest()

    def _show_slowest(self) -> None:
        ran = sorted(
            (o for o in self.outcomes if not o.cached and o.duration > 0),
            key=lambda o: o.duration,
            reverse=True,
        )[:SLOWEST]
        cached = sum(o.cached for o in self.outcomes)
        if cached:
            LOGGER.info(__("%d of %d groups reported from the cache"), cached, len(self.outcomes))
        if len(ran) > 1:
            LOGGER.info(bold(__("slowest groups:")))
            for o in ran:
                LOGGER.info("  %7.3f s  %s: %s (line %s)", o.duration, o.filename, o.group, o.line)

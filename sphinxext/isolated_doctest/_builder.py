"""The ``doctest`` builder: collect jobs, run them in children, report as Sphinx does."""

from __future__ import annotations

import itertools
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.builders import Builder
from sphinx.locale import __
from sphinx.util.console import bold  # type: ignore[attr-defined]
from sphinx.util.display import status_iterator

from sphinxext.isolated_doctest._cache import ResultCache
from sphinxext.isolated_doctest._collect import collect
from sphinxext.isolated_doctest._config import Settings
from sphinxext.isolated_doctest._directives import config_preamble_origin
from sphinxext.isolated_doctest._files import write_json, write_junit
from sphinxext.isolated_doctest._job import Preamble, RunSettings
from sphinxext.isolated_doctest._pool import Executor
from sphinxext.isolated_doctest._report import Counts, DocumentReport, GroupOutcome
from sphinxext.isolated_doctest._result import JobResult
from sphinxext.isolated_doctest._shared import LOGGER

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence, Set

    from sphinx.application import Sphinx

    from sphinxext.isolated_doctest._job import Job

SLOWEST = 5


def _present(job: Job, result: JobResult | None) -> bool:
    """Whether any group of the job exists once ``:skipif:`` has been applied."""
    if job.error is not None:
        return True
    if result is None:
        return False
    return result.fault is not None or any(
        e["t"] in {"group", "preamble_error"} for e in result.events
    )


def _failed(result: JobResult) -> bool:
    return result.fault is not None or any(
        (e["t"] == "group_done" and not e["ok"]) or e["t"] == "preamble_error"
        for e in result.events
    )


class IsolatedDocTestBuilder(Builder):
    """Runs the documentation's doctests, each group in a fresh process."""

    name = "doctest"
    epilog = __(
        "Testing of doctests in the sources finished, look at the "
        "results in %(outdir)s/output.txt."
    )

    def init(self) -> None:
        self.settings = Settings.from_config(self.config)
        self.run_settings = RunSettings(
            # What the reference builder gives an example: doctest_path first,
            # then the build's sys.path, conf.py's additions included.
            sys_path=(*map(str, self.config.doctest_path), *sys.path),
            global_setup=self.config.doctest_global_setup,
            global_cleanup=self.config.doctest_global_cleanup,
            optionflags=self.config.doctest_default_flags,
            fail_fast=self.config.doctest_fail_fast,
        )
        self.executor = Executor(
            settings=self.run_settings,
            jobs=self.settings.jobs,
            start_method=self.settings.start_method,
        )
        # Most groups run after conf.py's preamble: start its fork server while
        # Sphinx reads the pages.
        self.executor.prepare(
            Preamble(
                value=self.config.isolated_doctest_preamble,
                origin=config_preamble_origin(self._sphinx),
            )
        )
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
        self.outfile.write(text)

    def _warn_out(self, text: str) -> None:
        if self._quiet():
            LOGGER.warning(text)
        else:
            LOGGER.info(text, nonl=True)
        self.outfile.write(text)

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

    def _test_documents(self, docnames: list[str]) -> None:
        LOGGER.info(bold(__("running tests...")))
        jobs: list[Job] = []
        for docname in docnames:
            jobs += collect(
                env=self.env,
                config=self.config,
                settings=self.settings,
                docname=docname,
                first_index=len(jobs),
            )
        results = self._run(jobs, complete=self.env.found_docs.issubset(docnames))
        self._report(jobs, results)

    def _run(self, jobs: list[Job], *, complete: bool) -> dict[int, JobResult]:
        results: dict[int, JobResult] = {}
        cache = None
        if self.settings.cache:
            folder = Path(self.doctreedir, "isolated_doctest")
            cache = ResultCache(folder, settings=self.run_settings)
        keys: dict[int, str] = {}
        pending: list[Job] = []
        fresh = bool(getattr(self._sphinx, "_fresh_env_used", False))
        for job in jobs:
            if job.error is not None:
                continue
            if cache is not None:
                keys[job.index] = key = cache.key(job)
                cached = None if fresh else cache.get(key)
                if cached is not None:
                    results[job.index] = JobResult.from_cache(job.index, cached)
                    continue
            pending.append(job)
        if pending:
            self._execute(pending, results, cache, keys)
        if cache is not None:
            cache.save(complete=complete)
        return results

    def _execute(
        self,
        pending: list[Job],
        results: dict[int, JobResult],
        cache: ResultCache | None,
        keys: dict[int, str],
    ) -> None:

        executor = self.executor
        labels = {job.index: f"{job.docname}: {', '.join(g.name for g in job.groups)}"
                  for job in pending}
        progress: Iterable[JobResult] = status_iterator(
            executor.run(pending),
            __("running groups... "),
            "darkgreen",
            len(pending),
            self._sphinx.verbosity,
            stringify_func=lambda r: labels[r.index],
        )
        for result in progress:
            results[result.index] = result
            if cache is not None:
                cache.put(keys[result.index], result)
            if self.config.doctest_fail_fast and _failed(result):
                executor.stop()
        for preamble, text in executor.server_stderr:
            # Written once, where the preamble ran, for every group after it.
            where = preamble.origin or "conf.py"
            LOGGER.info(bold(__("stderr of the %s preamble (set at %s):")), preamble.label, where)
            LOGGER.info(textwrap.indent(text.strip(), "    "))

    def _report(self, jobs: list[Job], results: dict[int, JobResult]) -> None:
        fail_fast = self.config.doctest_fail_fast
        show_successes = self.config.doctest_show_successes
        for docname, doc_jobs in itertools.groupby(jobs, key=lambda j: j.docname):
            page = list(doc_jobs)
            if not any(_present(job, results.get(job.index)) for job in page):
                continue
            if show_successes:
                self._out(f"\nDocument: {docname}\n----------{'-' * len(docname)}\n")
            report = DocumentReport(
                flags=self.run_settings.optionflags, show_successes=show_successes
            )
            success = True
            for job in page:
                result = results.get(job.index)
                if result is None and job.error is None:
                    continue  # not run: an earlier failure stopped the run
                ok = report.replay(job, result, self._warn_out)
                if result is not None and result.fault is None:
                    self._relay_stderr(job, result)
                if not ok:
                    success = False
                    if fail_fast:
                        break
            report.summarize(self._out, self.counts)
            self.outcomes += report.outcomes
            if not success and fail_fast:
                break

    @staticmethod
    def _relay_stderr(job: Job, result: JobResult) -> None:
        """Show what a child wrote to stderr (e.g. Python warnings), as a build in
        one process would have shown it; it is not part of output.txt."""
        text = result.stderr_tail.strip()
        if text:
            groups = ", ".join(g.name for g in job.groups)
            LOGGER.info(bold(__("stderr of %s (%s):")), job.filename, groups)
            LOGGER.info(textwrap.indent(text, "    "))

    def finish(self) -> None:
        self.executor.close()

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

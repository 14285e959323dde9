"""The pytest plugin's collectors, items and session (see :mod:`.pytest`).

A page is a :class:`pytest.File`, a doctest group an item.  The project is
read once per session (per pytest-xdist worker), at the start of collection.
Jobs are submitted early: in a plain run every selected group's at the start
of the run, so that they run in parallel as in a build; in an xdist worker
(which learns its items one at a time) the running item's and the next's.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import textwrap
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest._code.code import ReprFileLocation, TerminalRepr

from sphinxext.isolated_doctest._project import ProjectError, locked, read_project
from sphinxext.isolated_doctest._report import (
    Counts,
    DocumentReport,
    present,
    split_preamble_stderr,
)
from sphinxext.isolated_doctest._runs import Runs
from sphinxext.isolated_doctest.pytest import SphinxWarning

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from _pytest._io import TerminalWriter

    from sphinxext.isolated_doctest._project import Group, Page, Project, ReadWarning

#: Report properties (also in ``--junitxml``) that the summary counts.
TESTS_PROPERTY = "doctest_tests"
CACHED_PROPERTY = "doctest_cached"
#: What a worker hands pytest-xdist's controller: its fork servers' stderr.
WORKER_STDERR = "sphinx_doctest_preamble_stderr"

_FILE_LINE = re.compile(r'^File "[^"]*", line (\d+)', re.MULTILINE)


class GroupFailure(Exception):
    """A group that did not pass: its text (as in output.txt) and a headline."""

    def __init__(self, text: str, headline: str, line: int | None) -> None:
        super().__init__(headline)
        self.text = text
        self.headline = headline
        self.line = line


class FailureRepr(TerminalRepr):
    """output.txt's text for the group, then ``path:line: headline``."""

    def __init__(self, text: str, crash: ReprFileLocation) -> None:
        self.text = text
        self.reprcrash = crash

    def toterminal(self, tw: TerminalWriter) -> None:
        for line in self.text.rstrip("\n").splitlines():
            tw.line(line)
        self.reprcrash.toterminal(tw)


def _warn(found: Iterable[ReadWarning], default_path: Path) -> None:
    """Sphinx's warnings as Python warnings; one the filters make an error is
    raised with its place."""
    for warning in found:
        try:
            warnings.warn_explicit(
                warning.message,
                SphinxWarning,
                filename=warning.path or str(default_path),
                lineno=warning.line or 0,
            )
        except SphinxWarning:
            raise SphinxWarning(warning.text) from None


def _failed_counts(counts: Counts) -> str:
    failures = counts.failures
    if failures["test"]:
        return f"{failures['test']} of {counts.tries['test']} tests failed"
    return "its setup code failed" if failures["setup"] else "its cleanup code failed"


class GroupItem(pytest.Item):
    """One doctest group of a page."""

    def __init__(self, *, group: Group, page: Page, doctests: DoctestSession, **kwargs: Any):
        super().__init__(**kwargs)
        self.group = group
        self.page = page
        self.doctests = doctests

    def runtest(self) -> None:
        doctests = self.doctests
        project, runs = doctests.project, doctests.runs
        assert project is not None and runs is not None
        jobs = self.group.jobs
        runs.submit(jobs)
        results = [runs.result(job) for job in jobs]
        _warn(project.new_warnings(), self.path)
        if not any(present(job, result) for job, result in zip(jobs, results, strict=True)):
            # Reported at the group, not here (as a skip marker would be).
            raise pytest.skip.Exception(
                f"every block of group {self.name!r} is skipped by its :skipif:",
                _use_item_location=True,
            )
        report = DocumentReport(
            flags=project.run_settings.optionflags,
            show_successes=project.config.doctest_show_successes,
        )
        out: list[str] = []
        ok = True
        for job, result in zip(jobs, results, strict=True):
            ok = report.replay(job, result, out.append) and ok
            if result is not None and result.stderr_tail.strip():
                self.add_report_section("call", "stderr", result.stderr_tail)
        _warn(project.new_warnings(), self.path)
        counts = Counts()
        report.summarize(out.append, counts)
        outcomes = report.outcomes
        self.user_properties.append((TESTS_PROPERTY, counts.tries["test"]))
        if outcomes and all(o.cached for o in outcomes):
            self.user_properties.append((CACHED_PROPERTY, "true"))
        if not ok:
            text = "".join(out)
            # A fault says what happened; a failed example is in the text.
            fault = next((o.message for o in outcomes if o.message), None)
            headline = fault or _failed_counts(counts)
            first = _FILE_LINE.search(text)
            line = int(first[1]) if first else self.group.line
            raise GroupFailure(text, headline, line)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        error = excinfo.value
        if isinstance(error, GroupFailure):
            crash = ReprFileLocation(self.location[0], error.line or 0, error.headline)
            return FailureRepr(error.text, crash)
        if isinstance(error, SphinxWarning):  # made an error by the warning filters
            return f"{self.location[0]}: {error}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, (self.group.line or 1) - 1, f"[sphinx doctest] {self.name}"


class PageFile(pytest.File):
    """A page of the project with at least one doctest group."""

    def __init__(self, *, page: Page, doctests: DoctestSession, **kwargs: Any):
        super().__init__(**kwargs)
        self.page = page
        self.doctests = doctests

    def collect(self) -> Iterator[GroupItem]:
        for group in self.page.groups:
            yield GroupItem.from_parent(
                self, name=group.name, group=group, page=self.page, doctests=self.doctests
            )


class DoctestSession:
    """The plugin at work, registered by :func:`.pytest.pytest_configure`."""

    def __init__(
        self, *, config: pytest.Config, srcdir: Path, confdir: Path, builddir: Path | None
    ) -> None:
        self.config = config
        self.srcdir = srcdir
        self.confdir = confdir
        self._builddir = builddir
        self._temporary: Path | None = None
        self.project: Project | None = None
        self.runs: Runs | None = None
        self._worker = hasattr(config, "workerinput")
        #: Each fork server's stderr: (preamble label, origin, shown, notices).
        self._stderr: list[tuple[str, str, str, str]] = []
        if config.args_source != pytest.Config.ArgsSource.ARGS and not self._reached(
            config.args
        ):
            # The command line named no paths: collect the project's pages
            # besides what pytest collects anyway (its testpaths, say).
            config.args.append(str(srcdir))

    def _reached(self, args: Iterable[str]) -> bool:
        """Whether collecting ``args`` reaches a page of the project."""
        for arg in args:
            path = Path(self.config.invocation_params.dir, arg.split("::")[0]).resolve()
            if path.is_relative_to(self.srcdir) or self.srcdir.is_relative_to(path):
                return True
        return False

    def _folder(self) -> Path:
        if self._builddir is not None:
            return self._builddir
        cache = getattr(self.config, "cache", None)
        key = hashlib.sha256(f"{self.srcdir}\n{self.confdir}".encode()).hexdigest()[:12]
        if cache is not None:
            return Path(cache.mkdir(f"sphinx-doctest-{key}"))
        # No pytest cache (-p no:cacheprovider): read afresh, keep nothing.
        if self._temporary is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="sphinx-doctest-"))
        return self._temporary

    # -- hooks ----------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> str:
        return f"sphinx doctest: {self.srcdir} (conf.py in {self.confdir})"

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        # pytest-xdist's controller collects nothing itself (its plugin is
        # registered after this one: ask now, not when this one was).
        controller = not self._worker and self.config.pluginmanager.has_plugin("dsession")
        if controller or not self._reached(session.config.args):
            return
        try:
            self.project = read_project(
                srcdir=self.srcdir, confdir=self.confdir, builddir=self._folder()
            )
        except ProjectError as exc:
            raise pytest.UsageError(f"--sphinx-doctest: {exc}") from None
        project = self.project
        try:
            _warn(project.warnings, self.confdir / "conf.py")
        except SphinxWarning as exc:
            # As sphinx-build -W does: read again next time, and say it again.
            (project.doctreedir / "environment.pickle").unlink(missing_ok=True)
            raise pytest.UsageError(
                f"{exc}\n(a Sphinx warning, made an error by pytest's warning filters)"
            ) from None
        self.runs = Runs(
            settings=project.settings,
            run_settings=project.run_settings,
            cache_folder=project.doctreedir / "isolated_doctest"
            if project.settings.cache else None,
        )

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> PageFile | None:
        if self.project is None:
            return None
        page = self.project.pages.get(file_path.resolve())
        if page is None:
            return None
        file: PageFile = PageFile.from_parent(parent, path=file_path, page=page, doctests=self)
        return file

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if self.runs is None or self._worker or session.config.option.collectonly:
            return
        # Every selected group, at once: they run in parallel, as in a build,
        # and each item waits only for its own.
        self.runs.submit(
            job for item in session.items if isinstance(item, GroupItem)
            for job in item.group.jobs
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        if self.runs is None:
            return
        for ahead in (item, nextitem):
            if isinstance(ahead, GroupItem):
                self.runs.submit(ahead.group.jobs)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        runs = self.runs
        if runs is None or self.project is None:
            return
        runs.close()
        with locked(self._folder()):
            runs.save_cache()
        for preamble, text in runs.server_stderr:
            shown, notices = split_preamble_stderr(preamble, text)
            self._stderr.append((preamble.label, preamble.origin or "conf.py", shown, notices))
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_STDERR] = self._stderr

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """pytest-xdist: a worker ended; keep what its fork servers wrote."""
        output = getattr(node, "workeroutput", None) or {}
        self._stderr += [(a, b, c, d) for a, b, c, d in output.get(WORKER_STDERR, [])]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        groups = tests = failed = cached = 0
        for reports in terminalreporter.stats.values():
            for report in reports:
                properties = dict(getattr(report, "user_properties", ()))
                if getattr(report, "when", None) != "call" or TESTS_PROPERTY not in properties:
                    continue
                groups += 1
                tests += int(properties[TESTS_PROPERTY])
                failed += report.failed
                cached += CACHED_PROPERTY in properties
        verbose = self.config.get_verbosity() > 0
        for label, origin, shown, notices in self._stderr:
            for part in (shown, notices if verbose else ""):
                if part:
                    terminalreporter.write_sep(
                        "-", f"stderr of the {label} preamble (set at {origin})"
                    )
                    terminalreporter.write_line(textwrap.indent(part, "    "))
        if groups:
            terminalreporter.write_line(
                f"sphinx doctest: {tests} tests in {groups} groups, {failed} failed, "
                f"{cached} from the cache"
            )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.runs is not None:
            self.runs.close()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

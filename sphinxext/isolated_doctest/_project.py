"""A Sphinx project read but not built: each page's doctest groups, as jobs.

For runners other than the builder (the pytest plugin): Sphinx reads the
pages with its ``dummy`` builder, which writes nothing, keeping its
environment and doctrees in ``builddir`` so that the next run reads only
what changed, as ``sphinx-build`` does.  The jobs are the builder's own
(:func:`~sphinxext.isolated_doctest._collect.collect`), one group each, so
that every group can be selected, run and reported on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.application import Sphinx
from sphinx.errors import SphinxError
from sphinx.util.console import strip_escape_sequences  # type: ignore[attr-defined]
from sphinx.util.docutils import docutils_namespace, patch_docutils

from sphinxext.isolated_doctest._collect import collect
from sphinxext.isolated_doctest._config import Settings
from sphinxext.isolated_doctest._job import RunSettings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sphinx.config import Config

    from sphinxext.isolated_doctest._job import Job

#: The first line of a warning as Sphinx writes it: ``path:line: WARNING: text``
#: (the place may be shorter, or missing).
_WARNING = re.compile(r"^(?P<where>.*?)\b(?:WARNING|ERROR|CRITICAL): ")


class ProjectError(Exception):
    """The project cannot be read; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Group:
    """A doctest group of a page, and the jobs that run it (one, or one per
    block with ``isolated_doctest_isolation = "block"``)."""

    name: str
    #: The document line of its first block.
    line: int | None
    jobs: tuple[Job, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Page:
    docname: str
    #: The page's source file.
    path: Path
    groups: tuple[Group, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadWarning:
    """A warning Sphinx wrote while reading, with its place if it has one."""

    text: str
    path: str | None
    line: int | None

    @property
    def message(self) -> str:
        """The text without its place (which Python's warnings give apart)."""
        match = _WARNING.match(self.text)
        return self.text[len(match["where"]):] if match else self.text


@dataclass(kw_only=True, eq=False)
class Project:
    """What a run needs of a read project."""

    srcdir: Path
    doctreedir: Path
    config: Config
    settings: Settings
    run_settings: RunSettings
    #: Pages with at least one group, by source file, in document order.
    pages: dict[Path, Page]
    warnings: list[ReadWarning]
    #: Where Sphinx's logging goes from now on (a group's run may still warn).
    warning_stream: io.StringIO

    def new_warnings(self) -> list[ReadWarning]:
        """The warnings written since the last call."""
        found = _split_warnings(self.warning_stream.getvalue())
        self.warning_stream.seek(0)
        self.warning_stream.truncate()
        return found


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock: parallel runs (pytest-xdist's workers) read
    and write one build folder in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _split_warnings(text: str) -> list[ReadWarning]:
    found: list[ReadWarning] = []
    for line in strip_escape_sequences(text).splitlines():
        match = _WARNING.match(line)
        if match is None and found:
            # The rest of a warning of several lines (docutils' are).
            last = found[-1]
            found[-1] = dataclasses.replace(last, text=f"{last.text}\n{line}".rstrip())
        elif match is not None or line.strip():
            where = match["where"].rstrip(": ") if match else ""
            path, _, number = where.rpartition(":")
            found.append(
                ReadWarning(text=line, path=path, line=int(number))
                if number.isdigit()
                else ReadWarning(text=line, path=where or None, line=None)
            )
    return found


def read_project(*, srcdir: Path, confdir: Path, builddir: Path) -> Project:
    """Read the project (what changed since the last read) and collect its groups.

    Raise :class:`ProjectError` if Sphinx cannot read it.
    """
    warning_stream = io.StringIO()
    doctreedir = builddir / "doctrees"
    # conf.py may extend sys.path for the examples: the children get it
    # (RunSettings), the tests of this process do not.
    sys_path = list(sys.path)
    try:
        with locked(builddir), patch_docutils(confdir), docutils_namespace():
            app = Sphinx(
                srcdir,
                confdir,
                builddir / "dummy",
                doctreedir,
                "dummy",
                status=None,
                warning=warning_stream,
                freshenv=False,
            )
            if app.statuscode:  # a bad setting: see _config.check
                raise ProjectError(_first_errors(warning_stream.getvalue()))
            try:
                # Read and pickle what changed; write nothing.
                app.builder.build([], method="specific")
            except BaseException:
                # As sphinx-build does: the next run starts afresh.
                Path(doctreedir, "environment.pickle").unlink(missing_ok=True)
                raise
            run_settings = RunSettings.from_config(app.config)
            settings = Settings.from_config(app.config)
            pages = _pages(app, settings)
    except SphinxError as exc:
        raise ProjectError(f"{srcdir}: {exc}") from None
    finally:
        sys.path[:] = sys_path
    return Project(
        srcdir=Path(app.srcdir),
        doctreedir=doctreedir,
        config=app.config,
        settings=settings,
        run_settings=run_settings,
        pages=pages,
        warnings=_split_warnings(warning_stream.getvalue()),
        warning_stream=_cleared(warning_stream),
    )


def _cleared(stream: io.StringIO) -> io.StringIO:
    stream.seek(0)
    stream.truncate()
    return stream


def _first_errors(text: str) -> str:
    return "\n".join(w.text for w in _split_warnings(text)) or "Sphinx could not start"


def _pages(app: Sphinx, settings: Settings) -> dict[Path, Page]:
    """Every page's groups, their jobs numbered across the project."""
    env = app.env
    pages: dict[Path, Page] = {}
    index = 0
    for docname in sorted(env.found_docs):
        groups: dict[str, list[Job]] = {}
        lines: dict[str, int | None] = {}
        jobs = collect(
            env=env, config=app.config, settings=settings, docname=docname, first_index=0
        )
        for job in jobs:
            for spec in job.groups:
                # One group per job, whatever the isolation: an item is a group.
                one = job if len(job.groups) == 1 else dataclasses.replace(job, groups=(spec,))
                groups.setdefault(spec.name, []).append(dataclasses.replace(one, index=index))
                lines.setdefault(spec.name, spec.lineno)
                index += 1
        if groups:
            path = Path(env.doc2path(docname)).resolve()
            pages[path] = Page(
                docname=docname,
                path=path,
                groups=tuple(
                    Group(name=name, line=lines[name], jobs=tuple(group_jobs))
                    for name, group_jobs in groups.items()
                ),
            )
    return pages

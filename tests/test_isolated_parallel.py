"""``isolated_doctest_jobs`` bounds how many groups run at once, however they start."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sphinx
from isolated_helpers import ROOTS, app_with_start, output_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp


def most_at_once(folder: Path) -> int:
    """The largest number of groups that were running at the same moment."""
    edges = []
    for path in folder.iterdir():
        start, end = map(float, path.read_text().split())
        edges += [(start, 1), (end, -1)]
    running = most = 0
    for _when, step in sorted(edges):  # an end sorts before a start at the same moment
        running += step
        most = max(most, running)
    return most


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_jobs_is_how_many_groups_run_at_once(
    make_app: Callable[..., SphinxTestApp],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    jobs: int,
    start: str,
) -> None:
    times = tmp_path / "times"
    times.mkdir()
    monkeypatch.setenv("ISOLATED_DOCTEST_TIMES", str(times))
    shutil.copytree(ROOTS / "test-isolated-overlap", tmp_path / "src")
    app = make_app(
        "doctest",
        srcdir=tmp_path / "src",
        freshenv=True,
        confoverrides={"isolated_doctest_jobs": jobs, "isolated_doctest_start": start},
    )
    try:
        app.build()
    finally:
        app.cleanup()
    assert app.statuscode == 0
    assert output_body(app).endswith(
        "    6 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert len(list(times.iterdir())) == 6
    # Six groups of 0.3 s each: with two slots, two of them always overlap.
    assert most_at_once(times) == jobs


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-pairs", freshenv=True)
def test_a_freed_slot_is_taken_again_at_once(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: str,
) -> None:
    """Both groups of a pair end at once; the next two start together, or the
    first of them waits for its partner in vain: no slot stays idle while a
    group waits for one (a worker forked between the two ends holds, for a
    moment, the slot of the one not reaped yet)."""
    monkeypatch.setenv("ISOLATED_DOCTEST_MEET", str(tmp_path))
    app = app_with_start(make_app, app_params, start)
    app.build()
    assert output_body(app).endswith(
        "   12 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 0
    assert len(list(tmp_path.glob("*-*"))) == 12



def test_under_sphinx_j_groups_start_while_pages_are_still_read(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``-j 2`` other processes read the pages; each chunk's groups start
    when it comes back, not once every page is read, and the report is in
    the same order as ever."""
    times = tmp_path / "times"
    times.mkdir()
    monkeypatch.setenv("ISOLATED_DOCTEST_TIMES", str(times))
    monkeypatch.setenv("ISOLATED_DOCTEST_READ", str(tmp_path / "read"))
    shutil.copytree(ROOTS / "test-isolated-parallel-read", tmp_path / "src")
    app = make_app("doctest", srcdir=tmp_path / "src", freshenv=True, parallel=2)
    try:
        app.build()
    finally:
        app.cleanup()
    assert app.statuscode == 0
    body = output_body(app)
    documents = [line for line in body.splitlines() if line.startswith("Document: ")]
    if sphinx.version_info < (8,):
        # Sphinx 7's doctest builder tests pages in the order of a set, and so do we.
        documents.sort()
    assert documents == [f"Document: p{n:02}" for n in range(40)]
    assert body.endswith(
        "   40 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    starts = sorted(float(path.read_text()) for path in times.iterdir())
    assert len(starts) == 40
    read = float((tmp_path / "read").read_text())
    # Forty pages at 0.02 s each, in chunks of 14, 14 and 12: the first two
    # chunks come back about 0.25 s before the last.
    assert starts[0] < read

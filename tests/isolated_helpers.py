"""What a user of the isolated builder reads: output.txt and .json, the console, the warnings."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.util.console import strip_escape_sequences

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sphinx.testing.util import SphinxTestApp

ROOTS = Path(__file__).parent / "roots"


#: Python 3.13's doctest words its tallies differently ("1 item passed all
#: tests", "1 test in a", "3 passed."); each such line, and the 3.11 line that
#: says the same (one for one, so nothing is lost in between).
_TALLY_313 = [
    (re.compile(r"^1 item (passed all tests:|had failures:|had no tests:)$", re.M),
     r"1 items \1"),
    (re.compile(r"^( +)1 test in (.+)$", re.M), r"\g<1>1 tests in \2"),
    (re.compile(r"^(\d+) tests? in (\d+) items?\.$", re.M), r"\1 tests in \2 items."),
    (re.compile(r"^(\d+) passed\.$", re.M), r"\1 passed and 0 failed."),
    (re.compile(r"^(\*\*\*Test Failed\*\*\* 1) failure\.$", re.M), r"\1 failures."),
]


def as_doctest_311(text: str) -> str:
    """doctest's tallies as Python 3.11 and 3.12 word them, whatever Python
    runs: tests expect that wording, and this rewording is one for one."""
    if sys.version_info >= (3, 13):
        for pattern, replacement in _TALLY_313:
            text = pattern.sub(replacement, text)
    return text


def output_body(app: SphinxTestApp) -> str:
    """output.txt without its dated title (tallies as Python 3.11 words them)."""
    text = (app.outdir / "output.txt").read_text(encoding="utf-8")
    return as_doctest_311(text.split("\n", 2)[2])


def output_json(app: SphinxTestApp) -> dict[str, Any]:
    """output.json, parsed."""
    data: dict[str, Any] = json.loads((app.outdir / "output.json").read_text(encoding="utf-8"))
    return data


def console_status(app: SphinxTestApp) -> str:
    """The console's status stream, without colours."""
    return as_doctest_311(strip_escape_sequences(app.status.getvalue()))


def console_warnings(app: SphinxTestApp) -> str:
    """The console's warning stream, without colours."""
    return as_doctest_311(strip_escape_sequences(app.warning.getvalue()))


def app_with_start(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    start: str,
    **conf: Any,
) -> SphinxTestApp:
    """The test's ``@pytest.mark.sphinx`` app, its children started with
    ``start`` (``isolated_doctest_start``), with ``conf`` on top."""
    args, kwargs = app_params
    overrides = {**kwargs.get("confoverrides", {}), "isolated_doctest_start": start, **conf}
    return make_app(*args, **{**kwargs, "confoverrides": overrides})


def build_with(
    make_app: Callable[..., SphinxTestApp],
    tmp_path: Path,
    extension: str,
    root: str,
    *,
    force_all: bool = False,
    pages: tuple[str, ...] = (),
    **conf: Any,
) -> tuple[str, str, str, int]:
    """Build a copy of ``root`` (at ``tmp_path / extension``) with ``extension``
    alone: (output.txt body, status, warnings, exit status)."""
    srcdir = tmp_path / extension
    shutil.copytree(ROOTS / f"test-{root}", srcdir)
    app = make_app(
        "doctest",
        srcdir=srcdir,
        freshenv=True,
        confoverrides={"extensions": [extension], **conf},
    )
    try:
        if pages:
            app.build(filenames=[str(srcdir / page) for page in pages])
        else:
            app.build(force_all=force_all)
    finally:
        # Unregister its directives and nodes, so that the next app starts clean.
        app.cleanup()
    output = (app.outdir / "output.txt").read_text(encoding="utf-8")
    first, rule, body = output.split("\n", 2)
    assert first.startswith("Results of doctest builder run on ")
    assert set(rule) == {"="}
    return (
        as_doctest_311(body),
        as_doctest_311(strip_escape_sequences(app.status.getvalue())),
        as_doctest_311(strip_escape_sequences(app.warning.getvalue())),
        app.statuscode,
    )


def sphinx_build(
    srcdir: Path,
    outdir: Path,
    *options: str,
    wrapper: Sequence[str] = (),
    quiet: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``sphinx-build -b doctest -E -q`` (``-q`` only if ``quiet``; run through
    ``wrapper``, a command that ends by running its arguments) in its own
    session; kill that whole session however it ends.  Its output comes
    without colours."""
    argv = [sys.executable, "-m", "sphinx", "-b", "doctest", "-E", *(["-q"] * quiet), *options]
    proc = subprocess.Popen(
        [*wrapper, *argv, str(srcdir), str(outdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Sphinx colours its console where it sees a CI (CI=true) or a terminal.
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        as_doctest_311(strip_escape_sequences(stdout)),
        as_doctest_311(strip_escape_sequences(stderr)),
    )


def running(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, not yet reaped by its new parent) does not."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return state.split()[1] not in {"Z", "X"}


def wait_gone(pids: list[int], seconds: float = 3.0) -> list[int]:
    """The pids still running after up to ``seconds`` (a kill is not instant)."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [pid for pid in pids if running(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)

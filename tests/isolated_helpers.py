"""What a user of the isolated builder reads: output.txt and .json, the console, the warnings."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.util.console import strip_escape_sequences

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sphinx.testing.util import SphinxTestApp

ROOTS = Path(__file__).parent / "roots"


def output_body(app: SphinxTestApp) -> str:
    """output.txt without its dated title."""
    return (app.outdir / "output.txt").read_text(encoding="utf-8").split("\n", 2)[2]


def output_json(app: SphinxTestApp) -> dict[str, Any]:
    """output.json, parsed."""
    data: dict[str, Any] = json.loads((app.outdir / "output.json").read_text(encoding="utf-8"))
    return data


def console_status(app: SphinxTestApp) -> str:
    """The console's status stream, without colours."""
    return strip_escape_sequences(app.status.getvalue())


def console_warnings(app: SphinxTestApp) -> str:
    """The console's warning stream, without colours."""
    return strip_escape_sequences(app.warning.getvalue())


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
        body,
        strip_escape_sequences(app.status.getvalue()),
        strip_escape_sequences(app.warning.getvalue()),
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
    session; kill that whole session however it ends."""
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
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

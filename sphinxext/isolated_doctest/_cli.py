"""``python -m sphinxext.isolated_doctest``: the doctest builder without a Makefile.

It runs the ``doctest`` builder on a project with its own ``conf.py``, as
``sphinx-build -b doctest`` does, with a progress bar instead of Sphinx's
reading log, and a selection: ``--only PAGE[/GROUP]``, ``--changed``.  The
exit status is sphinx-build's: 0 when every group passed, 1 when one did not,
2 for a usage error (a bad argument, a page or group that does not exist).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sphinx.application import Sphinx

PROG = "python -m sphinxext.isolated_doctest"
#: Where SOURCEDIR and OUTDIR are when not given.
DEFAULT_SOURCE = "docs"
DEFAULT_OUTPUT = "_build/doctest"


class UsageProblem(Exception):
    """A bad argument: the message says which and what to give instead."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the doctests of a Sphinx project, each group in its own process "
        "(the doctest builder of sphinxext.isolated_doctest, with the project's conf.py).",
        epilog="Exit status: 0 when every group passed, 1 when one did not, 2 for a usage "
        "error. The reports are OUTDIR/output.txt, output.json and junit.xml.",
    )
    parser.add_argument(
        "sourcedir", nargs="?", metavar="SOURCEDIR",
        help=f"the Sphinx source folder (default: {DEFAULT_SOURCE}, else the current folder)",
    )
    parser.add_argument(
        "outdir", nargs="?", metavar="OUTDIR", default=DEFAULT_OUTPUT,
        help=f"where the reports go (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "-c", "--conf-dir", metavar="DIR", type=Path,
        help="the folder of conf.py (default: SOURCEDIR, else the current folder)",
    )
    parser.add_argument(
        "--only", metavar="PAGE[/GROUP]", action="append", default=[],
        help="test only this page (a document name such as guide/intro, or its file), "
        "or only this group of it; may be given more than once",
    )
    parser.add_argument(
        "--changed", action="store_true",
        help="test only the pages whose source file differs from git's HEAD (or is new)",
    )
    parser.add_argument(
        "-D", metavar="SETTING=VALUE", dest="define", action="append", default=[],
        help="override a conf.py setting, as sphinx-build -D does",
    )
    parser.add_argument(
        "-E", "--fresh", action="store_true",
        help="read every page again and ignore the result cache, as sphinx-build -E does",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="Sphinx's own output instead of the progress bar (-vv: more)",
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show the progress bar (default: when standard error is a terminal)",
    )
    return parser


class ProgressBar:
    """One line on a terminal: ``reading [#####-----] 10/20 pages``."""

    WIDTH = 30

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.shown = False

    def show(self, label: str, done: int, total: int, what: str) -> None:
        if not self.enabled or total <= 0:
            return
        filled = self.WIDTH * min(done, total) // total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r\x1b[2K{label:<8}[{bar}] {done}/{total} {what}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


class _ClearingStream:
    """Sphinx's warning stream: clears the bar before each warning."""

    def __init__(self, stream: TextIO, bar: ProgressBar) -> None:
        self._stream = stream
        self._bar = bar

    def write(self, text: str) -> int:
        self._bar.clear()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


def _folders(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    """SOURCEDIR, the folder of conf.py, OUTDIR; or UsageProblem."""
    if args.sourcedir is None:
        srcdir = Path(DEFAULT_SOURCE) if Path(DEFAULT_SOURCE).is_dir() else Path()
    else:
        srcdir = Path(args.sourcedir)
        if not srcdir.is_dir():
            raise UsageProblem(f"SOURCEDIR {args.sourcedir}: no such folder")
    if args.conf_dir is not None:
        confdir = args.conf_dir
        if not (confdir / "conf.py").is_file():
            raise UsageProblem(f"--conf-dir {confdir}: there is no conf.py in it")
    else:
        found = [d for d in (srcdir, Path()) if (d / "conf.py").is_file()]
        if not found:
            raise UsageProblem(
                f"no conf.py in {srcdir.resolve()} nor in the current folder: "
                "give its folder with -c DIR"
            )
        confdir = found[0]
    return srcdir.resolve(), confdir.resolve(), Path(args.outdir).resolve()


def _overrides(defines: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for define in defines:
        name, sep, value = define.partition("=")
        if not sep or not name.strip():
            raise UsageProblem(f"-D {define}: give a setting and its value, as -D name=value")
        overrides[name.strip()] = value
    return overrides


def _page_file(srcdir: Path, page: str, suffixes: Sequence[str]) -> Path | None:
    """The source file of ``page`` (a document name, or a file's path)."""
    for candidate in (Path(page), srcdir / page):
        if candidate.is_file() and candidate.suffix in suffixes:
            return candidate.resolve()
    for suffix in suffixes:
        path = srcdir / f"{page}{suffix}"
        if path.is_file():
            return path.resolve()
    return None


def _only(
    values: list[str], srcdir: Path, suffixes: Sequence[str]
) -> dict[Path, frozenset[str] | None]:
    """``--only`` values as source files and the groups wanted of each."""
    selected: dict[Path, frozenset[str] | None] = {}
    for value in values:
        page, group = value.strip("/"), None
        path = _page_file(srcdir, page, suffixes)
        if path is None and "/" in page:
            page, _, group = page.rpartition("/")
            path = _page_file(srcdir, page, suffixes)
        if path is None:
            raise UsageProblem(
                f"--only {value}: no such page in {srcdir} (give a document name such as "
                f"'guide/intro', or 'guide/intro/GROUP' for one group)"
            )
        wanted = selected.get(path, frozenset())
        if group is None or wanted is None:
            selected[path] = None
        else:
            selected[path] = wanted | {group}
    return selected


def _changed(srcdir: Path, suffixes: Sequence[str]) -> list[Path]:
    """The pages whose source differs from git's HEAD, or that git does not track yet."""
    def git(*argv: str) -> list[str]:
        try:
            done = subprocess.run(
                ["git", "-C", str(srcdir), *argv], capture_output=True, text=True, check=True
            )
        except FileNotFoundError:
            raise UsageProblem("--changed needs git, which is not installed") from None
        except subprocess.CalledProcessError as exc:
            raise UsageProblem(
                f"--changed needs a git checkout with a commit: {exc.stderr.strip()}"
            ) from None
        return [line for line in done.stdout.splitlines() if line]

    top = Path(git("rev-parse", "--show-toplevel")[0])
    names = git("diff", "--name-only", "HEAD", "--") + git(
        "ls-files", "--others", "--exclude-standard", "--full-name"
    )
    pages = {
        path for name in names
        if (path := (top / name).resolve()).is_relative_to(srcdir) and path.suffix in suffixes
        and path.is_file()
    }
    return sorted(pages)


def _print_results(outdir: Path, out: TextIO, elapsed: float) -> None:
    """The failing groups' reports and the summary, from the files the builder wrote."""
    try:
        data = json.loads((outdir / "output.json").read_text(encoding="utf-8"))
        text = (outdir / "output.txt").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return  # the build stopped early; Sphinx has said why
    for group in data["groups"]:
        if group["status"] != "passed":
            out.write(group["report"])
    summary = text[text.find("\nDoctest summary"):]
    out.write(summary)
    counts = data["summary"]
    out.write(
        f"{counts['groups']} groups ({counts['cached']} from the cache) in {elapsed:.1f} s; "
        f"reports in {outdir}\n"
    )


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args, out, err)
    except UsageProblem as exc:
        parser.print_usage(err)
        err.write(f"{PROG}: error: {exc}\n")
        return 2


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    srcdir, confdir, outdir = _folders(args)
    overrides = _overrides(args.define)
    if args.only and args.changed:
        raise UsageProblem("give --only or --changed, not both")

    from sphinx.application import Sphinx
    from sphinx.errors import SphinxError
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    from sphinxext.isolated_doctest._builder import IsolatedDocTestBuilder, SelectionError

    enabled = args.progress if args.progress is not None else err.isatty()
    bar = ProgressBar(err, enabled=enabled and not args.verbose)
    started = time.monotonic()
    with patch_docutils(confdir), docutils_namespace():
        try:
            app = Sphinx(
                srcdir, confdir, outdir, outdir / ".doctrees", "doctest",
                confoverrides=overrides,
                # Not None, which would make Sphinx quiet, and the builder send
                # the failures to the warning stream: they are printed below.
                status=out if args.verbose else io.StringIO(),
                warning=_ClearingStream(err, bar),  # type: ignore[arg-type]
                freshenv=args.fresh,
                verbosity=max(0, args.verbose - 1),
            )
        except SphinxError as exc:
            err.write(f"{PROG}: error: {exc}\n")
            return 2
        builder = app.builder
        if not isinstance(builder, IsolatedDocTestBuilder):
            err.write(
                f"{PROG}: error: {confdir / 'conf.py'} does not load sphinxext.isolated_doctest: "
                "add it to extensions\n"
            )
            return 2
        suffixes = list(app.config.source_suffix)
        files: list[Path] = []
        if args.only:
            only = _only(args.only, srcdir, suffixes)
            files = list(only)
            builder.select({app.env.path2doc(str(p)) or "": g for p, g in only.items()})
        elif args.changed:
            files = _changed(srcdir, suffixes)
            if not files:
                out.write(f"no page of {srcdir} differs from git's HEAD: nothing to test\n")
                return 0
            builder.select({app.env.path2doc(str(p)) or "": None for p in files})
        _show_progress(app, bar)
        try:
            app.build(filenames=files)
        except SelectionError as exc:
            bar.clear()
            raise UsageProblem(f"--only: {exc}") from None
        except (SphinxError, KeyboardInterrupt) as exc:
            bar.clear()
            err.write(f"{PROG}: error: {exc}\n")
            return 2
        finally:
            bar.clear()
    if not args.verbose:
        _print_results(outdir, out, time.monotonic() - started)
    return app.statuscode


def _show_progress(app: Sphinx, bar: ProgressBar) -> None:
    """Drive the bar from the build: pages read, then groups run."""
    reading: dict[str, int] = {"done": 0, "total": 0}

    def before_read(app: Sphinx, env: object, docnames: list[str]) -> None:
        reading["total"] = len(docnames)
        bar.show("reading", 0, len(docnames), "pages")

    def read(app: Sphinx, doctree: object) -> None:
        reading["done"] += 1
        bar.show("reading", reading["done"], reading["total"], "pages")

    app.connect("env-before-read-docs", before_read)
    app.connect("doctree-read", read)
    builder: Any = app.builder
    builder.progress = lambda done, total: bar.show("testing", done, total, "groups")

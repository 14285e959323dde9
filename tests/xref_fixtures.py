"""Shared helpers for the xref_check tests: inventories as bytes, a loopback server."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.util.console import strip_escape_sequences

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sphinx.testing.util import SphinxTestApp

ROOTS = Path(__file__).parent / "roots"


def inventory_bytes(project: str, version: str, entries: list[tuple[str, str]]) -> bytes:
    """A version 2 ``objects.inv`` for ``(name, domain:type)`` entries."""
    body = "".join(
        f"{name} {objtype} 1 {'index.html#' + ('$' if objtype != 'std:label' else name)} -\n"
        for name, objtype in entries
    )
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    return header.encode() + zlib.compress(body.encode())


def write_inventory(path: Path, project: str, version: str, entries: list[tuple[str, str]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(inventory_bytes(project, version, entries))
    return str(path)


DEMO_ENTRIES = [
    ("demo", "py:module"),
    ("demo.Widget", "py:class"),
    ("demo.Widget.spin", "py:method"),
    ("demo.make_widget", "py:function"),
    ("demo-intro", "std:label"),
]

#: A fake inventory for the installed Sphinx, to exercise the import check.
SPHINX_ENTRIES = [
    ("sphinx.application", "py:module"),
    ("sphinx.application.Sphinx", "py:class"),
    ("sphinx.application.Sphinx.gone_method", "py:method"),
]


def copy_root(name: str, tmp_path: Path) -> Path:
    srcdir = tmp_path / name
    shutil.copytree(ROOTS / f"test-{name}", srcdir)
    return srcdir


def warning_lines(app: SphinxTestApp) -> list[str]:
    text = strip_escape_sequences(app.warning.getvalue())
    return [line for line in text.splitlines() if line.strip()]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve *folder* on 127.0.0.1 (a free port) in a thread; yield the base URL."""

    def handler(*args: object) -> _Quiet:
        return _Quiet(*args, directory=str(folder))  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""What a user of the isolated builder reads: output.txt, the console, the warnings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sphinx.util.console import strip_escape_sequences

if TYPE_CHECKING:
    from sphinx.testing.util import SphinxTestApp


def output_body(app: SphinxTestApp) -> str:
    """output.txt without its dated title."""
    return (app.outdir / "output.txt").read_text(encoding="utf-8").split("\n", 2)[2]


def console_status(app: SphinxTestApp) -> str:
    """The console's status stream, without colours."""
    return strip_escape_sequences(app.status.getvalue())


def console_warnings(app: SphinxTestApp) -> str:
    """The console's warning stream, without colours."""
    return strip_escape_sequences(app.warning.getvalue())

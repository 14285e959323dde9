"""The logger, the warning helper and its subtypes: every warning goes through here."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from sphinx.util import logging

if TYPE_CHECKING:
    from pathlib import Path

    from docutils.nodes import Node

LOGGER = logging.getLogger("sphinxext.isolated_doctest")


class Subtype(enum.StrEnum):
    """What a warning is about: filter with ``suppress_warnings``."""

    #: A configuration value, block option or metadata field is not usable.
    CONFIG = "config"
    #: A preamble cannot be applied (e.g. two different ones in one group).
    PREAMBLE = "preamble"
    #: A child failed in a way that is not an example's failure (e.g. crashed).
    FAULT = "fault"
    #: The result cache could not be read or written.
    CACHE = "cache"


def warn(
    message: str,
    *args: object,
    subtype: Subtype,
    location: Node | tuple[str, int | None] | str | None = None,
    error: bool = False,
) -> None:
    """Emit a warning of type ``isolated_doctest`` (an error if ``error``); Sphinx
    appends ``[type.subtype]``."""
    log = LOGGER.error if error else LOGGER.warning
    log(message, *args, type="isolated_doctest", subtype=str(subtype), location=location)


def line_of(path: Path, prefix: str) -> int | None:
    """The first line of ``path`` that starts with ``prefix``, for messages."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(prefix):
            return number
    return None

"""The logger, the warning helper and the warning subtypes shared by every stage."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

from sphinx.util import logging

if TYPE_CHECKING:
    from typing import Any, TypeAlias

    from docutils.nodes import Node

    #: Where a warning points: a node, ``(docname, lineno)``, a ``"path:line"``
    #: string, or nowhere.
    Location: TypeAlias = Node | tuple[str, int | None] | str | None

LOGGER: Final[logging.SphinxLoggerAdapter] = logging.getLogger("sphinxext.xref_check")

#: The warning ``type`` of every warning this extension emits; silence them all with
#: ``suppress_warnings = ["xref_check"]`` or one kind with ``"xref_check.<subtype>"``.
WARNING_TYPE: Final = "xref_check"


class Subtype(enum.StrEnum):
    """Why a warning was emitted: the ``subtype`` in ``[xref_check.<subtype>]``."""

    #: The target is nowhere: not in the project, not in any inventory.
    NOT_FOUND = "not_found"
    #: The target exists, but as another object type than the role links to.
    WRONG_ROLE = "wrong_role"
    #: An inventory did not load, so references into it cannot be checked or linked.
    INVENTORY_UNAVAILABLE = "inventory_unavailable"
    #: The target is in the installed package but not in the inventory, or in the
    #: inventory but gone from the installed package.
    VERSION = "version"
    #: An inventory documents another major.minor version than the one installed.
    VERSION_SKEW = "version_skew"
    #: An inventory URL could not be reached and the pinned snapshot was used.
    SNAPSHOT = "snapshot"
    #: A baseline entry matches no reference of the build any more.
    STALE_BASELINE = "stale_baseline"


def emit_warning(subtype: Subtype, msg: str, /, *args: Any, location: Location = None) -> None:
    """Emit one warning; every warning of this extension goes through here."""
    LOGGER.warning(msg, *args, type=WARNING_TYPE, subtype=subtype.value, location=location)

"""The HTML preamble note: tell readers which blocks need a preamble applied first.

An example that ran after gevent's ``monkey.patch_all()`` only works for a
reader who patches first too.  In HTML builds, every ``doctest`` and
``testcode`` block whose group runs after a preamble gets a short note right
above it.  The note is a separate element, never part of the code a reader
copies, and other builders (the doctest builder included) never see it.

Contract with the directives: each test node (a ``literal_block`` with a
``testnodetype`` attribute) carries ``preamble_label`` -- ``"gevent"``,
``"eventlet"``, ``"custom"``, or ``""`` for none -- set at ``doctree-read``
from the block option, the page's ``:doctest-preamble:`` field or
``isolated_doctest_preamble``.  Where only ``preamble`` (the value itself) is
present, the label is derived from it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Final

from docutils import nodes

if TYPE_CHECKING:
    from sphinx.application import Sphinx

__all__ = ["DEFAULT_NOTE", "NOTE_CLASS", "note_text", "setup_html"]

#: The note's text when ``isolated_doctest_preamble_note`` is ``True``.
DEFAULT_NOTE: Final = "Runs after the {preamble} preamble: apply it before any other import."
#: The CSS class of the note's ``<div>``.
NOTE_CLASS: Final = "isolated-doctest-preamble-note"

_STATIC: Final = Path(__file__).resolve().parent / "_static"
_CSS_FILE: Final = "isolated_doctest.css"
_NAMED: Final = frozenset({"gevent", "eventlet"})
#: Block types a reader would copy and run; setup, cleanup and output are not.
_NOTED_TYPES: Final = frozenset({"doctest", "testcode"})
_DONE: Final = "isolated_doctest_note"


def _label(node: nodes.Element) -> str:
    label = node.get("preamble_label")
    if isinstance(label, str):
        return label.strip()
    value = node.get("preamble")
    if not isinstance(value, str) or not value.strip():
        return ""
    value = value.strip()
    return value if value in _NAMED else "custom"


def note_text(setting: object, label: str) -> str | None:
    """The note's template for *setting* (the config value), or ``None`` for no note."""
    if not label or setting is False or setting is None:
        return None
    if isinstance(setting, str):
        return setting if setting.strip() else None
    return DEFAULT_NOTE


def _note(template: str, label: str) -> nodes.container:
    """``<div class="isolated-doctest-preamble-note"><p>…<code>gevent</code>…</p></div>``."""
    paragraph = nodes.paragraph()
    pieces = template.split("{preamble}")
    for index, piece in enumerate(pieces):
        if piece:
            paragraph += nodes.Text(piece)
        if index < len(pieces) - 1:
            paragraph += nodes.literal(label, label, classes=["preamble-name"])
    return nodes.container("", paragraph, classes=[NOTE_CLASS])


def _is_noted_block(node: nodes.Node) -> bool:
    return isinstance(node, nodes.literal_block) and node.get("testnodetype") in _NOTED_TYPES


def add_notes(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """``doctree-resolved``: put a note above each block that runs after a preamble."""
    if app.builder.format != "html":
        return
    setting: object = app.config.isolated_doctest_preamble_note
    for block in list(doctree.findall(_is_noted_block)):
        assert isinstance(block, nodes.literal_block)
        if block.get(_DONE) or block.parent is None:
            continue
        label = _label(block)
        template = note_text(setting, label)
        if template is None:
            continue
        block[_DONE] = True
        note = _note(template, label)
        note.source, note.line = block.source, block.line
        parent = block.parent
        parent.insert(parent.index(block), note)


def _wants_css(app: Sphinx) -> bool:
    return app.builder.format == "html" and app.config.isolated_doctest_preamble_note is not False


def _add_css(app: Sphinx) -> None:
    """``builder-inited``: link the note's stylesheet from every HTML page."""
    if _wants_css(app):
        app.add_css_file(_CSS_FILE)


def _copy_css(app: Sphinx, exception: BaseException | None) -> None:
    """``build-finished``: put the stylesheet in ``_static`` (config stays untouched)."""
    if exception is None and _wants_css(app):
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_STATIC / _CSS_FILE, static / _CSS_FILE)


def setup_html(app: Sphinx) -> None:
    """Register the preamble note: its ``doctree-resolved`` handler and its CSS.

    Reads ``isolated_doctest_preamble_note`` (registered by the extension's
    ``setup``): ``True`` for the default text, ``False`` for none, or a
    template in which ``{preamble}`` is replaced by the preamble's name.
    """
    app.connect("builder-inited", _add_css)
    app.connect("doctree-resolved", add_notes)
    app.connect("build-finished", _copy_css)

"""Sphinx's doctest directives, plus ``:preamble:`` and ``:timeout:``; preamble resolution.

The directives are sphinx.ext.doctest's own, so the nodes they make are the
ones its builder knows.  We add two options, and at ``doctree-read`` we give
every test node the preamble its group runs after (block beats page metadata
beats ``conf.py``), which is what the builder and the HTML note read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StateMachine
from sphinx.ext import doctest as sphinx_doctest

from sphinxext.isolated_doctest._job import NAMED_PREAMBLES
from sphinxext.isolated_doctest._shared import Subtype, line_of, warn

if TYPE_CHECKING:
    from docutils.nodes import Element, Node
    from sphinx.application import Sphinx
    from sphinx.util.typing import OptionSpec

#: The page metadata field that sets a page's preamble.
METADATA_FIELD = "doctest-preamble"
#: Where :func:`keep_raw_preamble` keeps the field's text as written.
RAW_ATTRIBUTE = "isolated_doctest_raw_preamble"


def _timeout(argument: str | None) -> float:
    value = directives.unchanged_required(argument)
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a number of seconds (use e.g. 30, or 0 for none)"
        ) from None
    if seconds < 0:
        raise ValueError(f"{value!r}: a timeout cannot be negative (use 0 for none)")
    return seconds


class _IsolatedMixin(sphinx_doctest.TestDirective):
    def run(self) -> list[Node]:
        result = super().run()
        node = result[0]
        if "preamble" in self.options:
            node["preamble_option"] = self.options["preamble"]
        if "timeout" in self.options:
            node["timeout"] = self.options["timeout"]
        line = self._content_line()
        if line is not None:
            node["content_line"] = line
        return result

    def _in_rst(self) -> bool:
        # MyST runs directives with a stand-in state machine of its own.
        return isinstance(self.state_machine, StateMachine)

    def _content_line(self) -> int | None:
        """The line of the block's first line of code, in the file that holds it.

        The node's own line is the directive's (the reference builder's
        reports count from it); our messages name the example's line.
        """
        if not self.content:
            return None
        if self._in_rst():
            offset: int | None = self.content.items[0][1]  # 0-based, in its own file
            return None if offset is None else offset + 1
        # MyST: the content offset counts from the line after the opening fence.
        line: int = self.lineno + 1 + self.content_offset
        return line


_EXTRA: OptionSpec = {"preamble": directives.unchanged_required, "timeout": _timeout}


class TestsetupDirective(_IsolatedMixin, sphinx_doctest.TestsetupDirective):
    option_spec: ClassVar[OptionSpec] = {
        **sphinx_doctest.TestsetupDirective.option_spec,
        **_EXTRA,
    }


class TestcleanupDirective(_IsolatedMixin, sphinx_doctest.TestcleanupDirective):
    option_spec: ClassVar[OptionSpec] = {
        **sphinx_doctest.TestcleanupDirective.option_spec,
        "timeout": _timeout,
    }


class DoctestDirective(_IsolatedMixin, sphinx_doctest.DoctestDirective):
    option_spec: ClassVar[OptionSpec] = {**sphinx_doctest.DoctestDirective.option_spec, **_EXTRA}


class TestcodeDirective(_IsolatedMixin, sphinx_doctest.TestcodeDirective):
    option_spec: ClassVar[OptionSpec] = {**sphinx_doctest.TestcodeDirective.option_spec, **_EXTRA}


class TestoutputDirective(_IsolatedMixin, sphinx_doctest.TestoutputDirective):
    option_spec: ClassVar[OptionSpec] = {
        **sphinx_doctest.TestoutputDirective.option_spec,
        "timeout": _timeout,
    }


DIRECTIVES: dict[str, type[sphinx_doctest.TestDirective]] = {
    "testsetup": TestsetupDirective,
    "testcleanup": TestcleanupDirective,
    "doctest": DoctestDirective,
    "testcode": TestcodeDirective,
    "testoutput": TestoutputDirective,
}


def is_test_node(node: Node) -> bool:
    return isinstance(node, nodes.literal_block | nodes.comment) and "testnodetype" in node


def _is_runnable(node: Node) -> bool:
    return is_test_node(node) or isinstance(node, nodes.doctest_block)


def preamble_label(value: str) -> str:
    """``gevent``, ``eventlet``, ``custom``, or ``''`` for no preamble."""
    value = value.strip()
    if not value:
        return ""
    return value if value in NAMED_PREAMBLES else "custom"


_origins: dict[tuple[str, int, int], str] = {}  # conf.py (path, mtime, size) -> origin


def config_preamble_origin(app: Sphinx) -> str:
    """Where conf.py sets ``isolated_doctest_preamble``, as ``conf.py:LINE``.

    Asked for on every page: conf.py is read again only when it has changed.
    """
    conf_py = Path(app.confdir, "conf.py")
    try:
        stat = conf_py.stat()
    except OSError:
        return "conf.py"
    key = (str(conf_py), stat.st_mtime_ns, stat.st_size)
    origin = _origins.get(key)
    if origin is None:
        line = line_of(conf_py, "isolated_doctest_preamble")
        origin = _origins[key] = f"conf.py:{line}" if line else "conf.py"
    return origin


def keep_raw_preamble(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read``, before Sphinx's metadata collector: keep the field as written.

    The collector stores the field's text after transforms such as smart quotes
    (``'`` becomes a curly quote), which breaks Python source; the paragraph's raw
    source is what the author wrote.
    """
    for docinfo in doctree.findall(nodes.docinfo):
        for field in docinfo.findall(nodes.field):
            if field[0].astext() == METADATA_FIELD:
                paragraphs = field[1].findall(nodes.paragraph)
                doctree[RAW_ATTRIBUTE] = "\n\n".join(p.rawsource for p in paragraphs)


def resolve_preambles(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read``: record on each test node the preamble its group runs after.

    Sets ``preamble`` (the value: a name or source, ``''`` for none),
    ``preamble_label`` (for the HTML note), ``preamble_origin`` (``file:line``)
    and, where a group names two different preambles, ``preamble_conflict``.
    """
    docname = app.env.docname
    source = str(app.env.doc2path(docname, False))
    default = app.config.isolated_doctest_preamble
    default_origin = config_preamble_origin(app) if default.strip() else ""
    page_value = app.env.metadata[docname].get(METADATA_FIELD)
    if page_value is not None:
        default = str(doctree.get(RAW_ATTRIBUTE, page_value))
        line = line_of(Path(app.env.doc2path(docname)), f":{METADATA_FIELD}:")
        default_origin = f"{source}:{line}" if line else source

    test_nodes: list[Element] = list(doctree.findall(_is_runnable))
    explicit: dict[str, tuple[str, str, Element]] = {}  # group -> (value, origin, node)
    conflicts: dict[str, str] = {}
    for node in test_nodes:
        value = node.get("preamble_option")
        if value is None:
            continue
        origin = f"{source}:{(node.line or 1)}"
        for group in node.get("groups", ["default"]):
            if group == "*":
                continue
            seen = explicit.get(group)
            if seen is None:
                explicit[group] = (value, origin, node)
            elif seen[0].strip() != value.strip() and group not in conflicts:
                conflicts[group] = (
                    f"group {group!r} has two different preambles: {seen[0].strip()!r} "
                    f"at {seen[1]} and {value.strip()!r} at {origin}; a group runs in one "
                    "process, so give it one preamble (or split it into two groups)"
                )
                warn("%s", conflicts[group], subtype=Subtype.PREAMBLE, location=node)

    for node in test_nodes:
        names = node.get("groups", [app.config.doctest_test_doctest_blocks])
        groups = [g for g in names if g != "*"]
        value, origin = default, default_origin
        for group in groups:
            if group in explicit:
                value, origin, _ = explicit[group]
                break
        node["preamble"] = value
        node["preamble_label"] = preamble_label(value)
        node["preamble_origin"] = origin if value.strip() else ""
        for group in groups:
            if group in conflicts:
                node["preamble_conflict"] = conflicts[group]


def register(app: Sphinx) -> None:
    for name, directive in DIRECTIVES.items():
        app.add_directive(name, directive)
    # Around Sphinx's metadata collector (priority 500), which removes the docinfo.
    app.connect("doctree-read", keep_raw_preamble, priority=400)
    app.connect("doctree-read", resolve_preambles, priority=600)

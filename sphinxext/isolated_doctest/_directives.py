"""Sphinx's doctest directives, plus ``:preamble:`` and ``:timeout:``; preamble resolution.

The directives are sphinx.ext.doctest's own, so the nodes they make are the
ones its builder knows.  We add two options, and at ``doctree-read`` we give
every test node the preamble its group runs after (block beats page metadata
beats ``conf.py``), which is what the builder and the HTML note read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StateMachine
from sphinx.ext import doctest as sphinx_doctest
from sphinx.util.osutil import relpath

from sphinxext.isolated_doctest import _sandbox
from sphinxext.isolated_doctest._job import Preamble, preamble_problem
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
            node["preamble_line"] = self._option_line("preamble")
        if "timeout" in self.options:
            node["timeout"] = self.options["timeout"]
        line = self._content_line()
        if line is not None:
            node["content_line"] = line
        if "sandbox" in self.options:
            node["sandbox"] = self.options["sandbox"]
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

    def _option_line(self, name: str) -> int:
        """The line that sets option ``name`` (the directive's, if not found)."""
        lines = self.block_text.splitlines()
        # In rst the block text starts with the directive's line; MyST's
        # starts on the line after its opening fence.
        first: int = self.lineno if self._in_rst() else self.lineno + 1
        for number, text in enumerate(lines):
            if text.strip().startswith((f":{name}:", f"{name}:")):
                return first + number
        return first if self._in_rst() else first - 1


_EXTRA: OptionSpec = {
    "preamble": directives.unchanged_required,
    "timeout": _timeout,
    "sandbox": _sandbox.option,
}


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


_origins: dict[tuple[str, int, int], int | None] = {}  # conf.py (path, mtime, size) -> line


def config_preamble(app: Sphinx) -> Preamble:
    """``isolated_doctest_preamble``, set at ``conf.py:LINE``.

    Asked for on every page: conf.py is read again only when it has changed.
    """
    value = app.config.isolated_doctest_preamble
    if not value.strip():
        return Preamble(value=value, origin="")
    conf_py = Path(app.confdir, "conf.py")
    try:
        stat = conf_py.stat()
    except OSError:
        return Preamble(value=value, origin="conf.py")
    key = (str(conf_py), stat.st_mtime_ns, stat.st_size)
    if key not in _origins:
        _origins[key] = line_of(conf_py, "isolated_doctest_preamble")
    line = _origins[key]
    if "isolated_doctest_preamble" in app.config.overrides or line is None:
        return Preamble(value=value, origin="conf.py")
    return Preamble(value=value, origin=f"conf.py:{line}", path=str(conf_py), line=line)


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


def _field_line(path: Path) -> int | None:
    """The line of the page's preamble field: rst's field list, or MyST's front matter."""
    return line_of(path, f":{METADATA_FIELD}:") or line_of(path, f"{METADATA_FIELD}:")


def resolve_preambles(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read``: record on each test node the preamble its group runs after.

    Sets ``preamble`` (the value: a name or source, ``''`` for none),
    ``preamble_label`` (for the HTML note), ``preamble_origin`` (``file:line``),
    ``preamble_path`` and ``preamble_line`` (where it is set), and, where the
    group cannot run (two different preambles, or a name that is none), the
    reason in ``preamble_error``.  A bad value set on the page is an error at
    its line; one set in conf.py is reported once, when the build starts.
    """
    docname = app.env.docname
    srcdir = str(app.env.srcdir)
    page_path = str(app.env.doc2path(docname))
    default = config_preamble(app)
    problems: dict[str, str] = {}  # value -> why it cannot be used
    page_value = app.env.metadata[docname].get(METADATA_FIELD)
    if page_value is not None:
        value = str(doctree.get(RAW_ATTRIBUTE, page_value))
        line = _field_line(Path(page_path))
        source = relpath(page_path, srcdir)
        default = Preamble(
            value=value, origin=f"{source}:{line}" if line else source, path=page_path,
            line=line or 0,
        )
        _check_value(default, problems)

    test_nodes: list[Element] = list(doctree.findall(_is_runnable))
    explicit: dict[str, tuple[Preamble, Element]] = {}
    conflicts: dict[str, str] = {}
    for node in test_nodes:
        value = node.get("preamble_option")
        if value is None:
            continue
        path = os.path.abspath(node.source) if node.source else page_path
        line = node.get("preamble_line") or node.line or 1
        setting = Preamble(
            value=value, origin=f"{relpath(path, srcdir)}:{line}", path=path, line=line
        )
        _check_value(setting, problems)
        for group in node.get("groups", ["default"]):
            if group == "*":
                continue
            seen = explicit.get(group)
            if seen is None:
                explicit[group] = (setting, node)
            elif seen[0].value.strip() != value.strip() and group not in conflicts:
                conflicts[group] = (
                    f"group {group!r} has two different preambles: "
                    f"{seen[0].value.strip()!r} at {seen[0].origin} and {value.strip()!r} "
                    f"at {setting.origin}; a group runs in one process, so give it one "
                    "preamble (or split it into two groups)"
                )
                warn("%s", conflicts[group], subtype=Subtype.PREAMBLE, location=setting.where)

    for node in test_nodes:
        names = node.get("groups", [app.config.doctest_test_doctest_blocks])
        groups = [g for g in names if g != "*"]
        setting = default
        for group in groups:
            if group in explicit:
                setting = explicit[group][0]
                break
        node["preamble"] = setting.value
        node["preamble_label"] = setting.label
        set_ = bool(setting.value.strip())
        node["preamble_origin"] = setting.origin if set_ else ""
        node["preamble_path"] = setting.path if set_ else ""
        node["preamble_line"] = setting.line if set_ else 0
        error = next((conflicts[g] for g in groups if g in conflicts), None)
        error = error or preamble_problem(setting.value)
        if error:
            node["preamble_error"] = error


def _check_value(setting: Preamble, reported: dict[str, str]) -> None:
    """Report a value that cannot be a preamble, at the line that sets it (once a page)."""
    problem = preamble_problem(setting.value)
    if problem and setting.origin not in reported:
        reported[setting.origin] = problem
        warn("%s", problem, subtype=Subtype.PREAMBLE, location=setting.where, error=True)


def register(app: Sphinx) -> None:
    for name, directive in DIRECTIVES.items():
        app.add_directive(name, directive)
    # Around Sphinx's metadata collector (priority 500), which removes the docinfo.
    app.connect("doctree-read", keep_raw_preamble, priority=400)
    app.connect("doctree-read", resolve_preambles, priority=600)
    app.connect("doctree-read", _sandbox.read_page_field, priority=600)

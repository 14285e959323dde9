"""From a page's doctree to jobs: sphinx.ext.doctest's grouping, cut by isolation level."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from docutils import nodes
from sphinx.ext.doctest import DocTestBuilder
from sphinx.util import logging
from sphinx.util.osutil import relpath

from sphinxext.isolated_doctest import _sandbox
from sphinxext.isolated_doctest._directives import is_test_node
from sphinxext.isolated_doctest._job import NO_PREAMBLE, Block, GroupSpec, Job, Preamble, Sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

    from docutils.nodes import Element, Node
    from sphinx.config import Config
    from sphinx.environment import BuildEnvironment

    from sphinxext.isolated_doctest._config import Settings

# Sphinx's own message for an empty block, from its own logger, as the reference does.
_sphinx_logger = logging.getLogger("sphinx.ext.doctest")


def _is_doctest_block(node: Node) -> bool:
    return is_test_node(node) or isinstance(node, nodes.doctest_block)


def _filename(env: BuildEnvironment, node: Node, docname: str) -> str:
    """The file that holds the block (which may be an included one), as Sphinx reports it."""
    try:
        filename = relpath(node.source, env.srcdir)
        return filename.partition(":docstring of ")[0]
    except Exception:
        return str(env.doc2path(docname, False))


#: A block without code: its kind, file and line.
EmptyBlock = tuple[str, str, int | None]


def warn_empty(blocks: list[EmptyBlock]) -> None:
    for kind, filename, lineno in blocks:
        _sphinx_logger.warning("no code/output in %s block at %s:%s", kind, filename, lineno)


def _source_line(element: Element, lineno: int | None) -> int | None:
    """The line of the block's first line of code, where known (None in a docstring)."""
    if lineno is None:
        return None
    if "content_line" in element:  # our directives
        line: int = element["content_line"]
        return line
    if isinstance(element, nodes.doctest_block):  # its node's line is its first
        first: int | None = element.line
        return first
    return None


class _Group:
    def __init__(self, name: str, sandbox: Sandbox) -> None:
        self.name = name
        self.blocks: list[Block] = []
        self.timeouts: list[float] = []
        self.preamble = NO_PREAMBLE
        self.sandbox = sandbox
        self.conflict: str | None = None
        self.lineno: int | None = None


def collect(
    *,
    env: BuildEnvironment,
    config: Config,
    settings: Settings,
    docname: str,
    first_index: int,
    doctree: nodes.document | None = None,
    empty: list[EmptyBlock] | None = None,
) -> list[Job]:
    """The page's jobs, numbered from ``first_index``, in document order.

    ``doctree`` is the page's, if at hand (else it is loaded).  Blocks without
    code are warned about, as the reference does, or listed in ``empty`` to be
    warned about later (see :func:`warn_empty`).
    """
    if doctree is None:
        doctree = env.get_doctree(docname)
    condition = _is_doctest_block if config.doctest_test_doctest_blocks else is_test_node
    # conf.py's sandbox, as the page's field tightens it; each block may tighten its group's.
    page_sandbox = _sandbox.tighten(
        settings.sandbox, doctree.get(_sandbox.DOCTREE_ATTRIBUTE, {})
    )
    groups: dict[str, _Group] = {}
    star: list[Block] = []
    filenames: dict[str | None, str] = {}
    for node in doctree.findall(condition):
        element: Element = node
        source = element["test"] if "test" in element else element.astext()
        filename = filenames.get(element.source)
        if filename is None:
            filename = filenames[element.source] = _filename(env, element, docname)
        lineno = DocTestBuilder.get_line_number(element)
        kind = element.get("testnodetype", "doctest")
        if not source:
            if empty is None:
                warn_empty([(kind, filename, lineno)])
            else:
                empty.append((kind, filename, lineno))
        block = Block(
            kind=kind,
            code=source,
            filename=filename,
            lineno=lineno,
            options=tuple(sorted((element.get("options") or {}).items())),
            skipif=element.get("skipif"),
            source_line=_source_line(element, lineno),
        )
        preamble = Preamble(
            value=element.get("preamble", config.isolated_doctest_preamble),
            origin=element.get("preamble_origin", "conf.py"),
            path=element.get("preamble_path", ""),
            line=element.get("preamble_line", 0),
        )
        names = element.get("groups", [config.doctest_test_doctest_blocks])
        if "*" in names:
            star.append(block)  # runs after whatever preamble its group has
            continue
        for name in names:
            group = groups.get(name)
            if group is None:
                group = groups[name] = _Group(name, page_sandbox)
            group.blocks.append(block)
            group.preamble = preamble
            if "sandbox" in element:
                group.sandbox = _sandbox.tighten(group.sandbox, element["sandbox"])
            group.conflict = group.conflict or element.get("preamble_error")
            if group.lineno is None:
                group.lineno = (lineno or 0) + 1
            if "timeout" in element:
                group.timeouts.append(float(element["timeout"]))
    if not groups:
        return []

    filename = str(env.doc2path(docname, False))
    specs = []
    for group in groups.values():
        blocks = (*group.blocks, *(dataclasses.replace(b, star=True) for b in star))
        timeout = max(group.timeouts) if group.timeouts else settings.timeout
        specs.append((group, GroupSpec(name=group.name, blocks=blocks, timeout=timeout,
                                       lineno=group.lineno)))

    jobs: list[Job] = []

    def add(group_specs: tuple[GroupSpec, ...], group: _Group, error: str | None) -> None:
        refusal = None if error else _sandbox.network_refusal(group.sandbox)
        jobs.append(
            Job(
                index=first_index + len(jobs),
                docname=docname,
                filename=filename,
                groups=group_specs,
                preamble=group.preamble,
                sandbox=group.sandbox,
                error=error or refusal,
                error_kind="sandbox" if refusal else "preamble",
            )
        )

    if settings.isolation == "document":
        # One child per page; groups with another preamble or sandbox need a
        # child of their own.
        run: list[GroupSpec] = []
        first = specs[0][0]
        for group, spec in specs:
            if group.conflict or (group.preamble, group.sandbox) != (first.preamble, first.sandbox):
                if run:
                    add(tuple(run), first, None)
                run = []
                first = group
            if group.conflict:
                add((spec,), group, group.conflict)
                continue
            run.append(spec)
        if run:
            add(tuple(run), first, None)
    elif settings.isolation == "block":
        for group, spec in specs:
            for unit in _per_block(spec):
                add((unit,), group, group.conflict)
    else:
        for group, spec in specs:
            add((spec,), group, group.conflict)
    return jobs


def _per_block(spec: GroupSpec) -> Iterator[GroupSpec]:
    """One spec per doctest or testcode(+testoutput) block, with all setup and cleanup."""
    frame = [b for b in spec.blocks if b.kind in {"testsetup", "testcleanup"}]
    units: list[list[Block]] = []
    for block in spec.blocks:
        if block.kind in {"doctest", "testcode"}:
            units.append([block])
        elif block.kind == "testoutput" and units and units[-1][0].kind == "testcode":
            units[-1].append(block)
    for unit in units:
        # Each unit stands for its group on its own, '*' blocks included.
        own = [b for b in frame if not b.star] + [dataclasses.replace(b, star=False) for b in unit]
        yield GroupSpec(
            name=spec.name,
            blocks=(*own, *(b for b in frame if b.star)),
            timeout=spec.timeout,
            lineno=(unit[0].lineno or 0) + 1,
        )

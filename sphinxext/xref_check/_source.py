"""Where a reference written in a docstring really is: the ``.py`` file and its line.

autodoc gives the text of a docstring the source ``"<file>:docstring of <name>"`` and
lines counted from the docstring's first line. The object's definition, found with
:mod:`ast` in the file that defines it, turns that into the file's own line.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import sys
import types
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from docutils.nodes import Node

DOCSTRING_OF: Final = ":docstring of "
#: What autodoc writes when it knows no file (Sphinx 7 does, for an instance
#: attribute's ``#:`` comment).
_BARE_DOCSTRING_OF: Final = "docstring of "


def docstring_source(source: str) -> tuple[str, str] | None:
    """``(file, name)`` of a docstring's source, ``"<file>:docstring of <name>"`` or
    ``"docstring of <name>"`` (file ``""``); None for any other source."""
    path, sep, name = source.partition(DOCSTRING_OF)
    if sep:
        return path, name
    if source.startswith(_BARE_DOCSTRING_OF):
        return "", source.removeprefix(_BARE_DOCSTRING_OF)
    return None


def node_source_line(node: Node) -> tuple[str | None, int | None, bool]:
    """``(source, line, own)`` of *node*, or of its nearest ancestor that says.

    An ancestor says with a source and a line, or with a docstring's source alone.
    *own* is False when they come from an ancestor: nodes that autodoc makes from
    type hints have no source of their own.
    """
    current: Node | None = node
    own = True
    while current is not None:
        source = getattr(current, "source", None)
        line = getattr(current, "line", None)
        if source and (line or docstring_source(source) is not None):
            return source, line, own
        current = current.parent
        own = False
    return None, None, True


def docstring_location(
    source: str, line: int | None, *, own: bool, class_content: str
) -> tuple[str, int | None]:
    """``(file, line)`` in the ``.py`` file for a docstring's *source* (see
    :func:`docstring_source`).

    *line* counts from the docstring's first line. A reference that is not part of
    the docstring's text (*own* False: a type hint autodoc turned into a field) is
    put at the object's definition. Where the object or its docstring cannot be
    found, the file is the one autodoc named and the line is the definition's, or
    None.
    """
    path, name = docstring_source(source) or ("", source)
    obj = _find_object(name)
    place = _definition(obj, name) if obj is not _MISSING else None
    if place is None:
        # an instance attribute, or a descriptor: where a class assigns it
        place = _attribute_place(name)
        obj = _MISSING
    if place is None:
        return path, None
    file, definition, docstrings = place
    if inspect.isclass(obj):
        docstrings = _class_docstrings(obj, docstrings, class_content)
    elif not docstrings and own:
        # autodoc shows the docstring of the method a base class defines
        inherited = _inherited_docstring(name)
        if inherited is not None:
            file, _definition_line, docstrings = inherited
    if not own or line is None or not docstrings:
        return file, definition
    # autodoc numbers the lines of the prepared docstrings one after the other:
    # leading blank lines dropped, a blank line at the end of each
    from sphinx.util.docstrings import prepare_docstring

    remaining = line - 1
    for first_line, raw in docstrings:
        raw_lines = raw.expandtabs().splitlines()
        leading = 0
        while leading < len(raw_lines) and not raw_lines[leading].strip():
            leading += 1
        count = len(prepare_docstring(raw))
        if remaining < count:
            return file, first_line + leading + remaining
        remaining -= count
    return file, definition


_MISSING: Final = object()


def _find_object(name: str) -> object:
    """The object autodoc documented as *name*; its modules are imported already."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: object = module
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except Exception:
            return _MISSING
        return obj
    try:
        return importlib.import_module(name)
    except Exception:
        return _MISSING


def _definition(
    obj: object, name: str
) -> tuple[str, int, list[tuple[int, str]]] | None:
    """``(file, definition line, [(docstring's first line, docstring)])`` of *obj*."""
    if isinstance(obj, types.ModuleType):
        file = getattr(obj, "__file__", None)
        if not file:
            return None
        defs = _parse(file)
        return file, 1, defs.get("", (1, []))[1]
    target = obj.fget if isinstance(obj, property) else obj
    try:
        target = inspect.unwrap(target)  # type: ignore[arg-type]
    except ValueError:
        return None
    module_name = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not (isinstance(module_name, str) and isinstance(qualname, str)):
        # a data attribute: found by name where autodoc found it
        module_name, _, qualname = _split_module(name)
        if not module_name:
            return None
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return None
    found = _parse(file).get(qualname)
    if found is None:
        return None
    definition, docstrings = found
    return file, definition, docstrings


def _attribute_place(name: str) -> tuple[str, int, list[tuple[int, str]]] | None:
    owner_name, _, attr = name.rpartition(".")
    owner = _find_object(owner_name)
    if not inspect.isclass(owner):
        return None
    for klass in owner.__mro__[:-1]:
        file = getattr(sys.modules.get(klass.__module__), "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        found = _parse(file).get(f"{klass.__qualname__}.{attr}")
        if found is not None:
            return file, found[0], found[1]
    return None


def _inherited_docstring(name: str) -> tuple[str, int, list[tuple[int, str]]] | None:
    owner_name, _, attr = name.rpartition(".")
    owner = _find_object(owner_name)
    if not inspect.isclass(owner):
        return None
    for klass in owner.__mro__[1:]:
        if attr in vars(klass):
            qualified = f"{klass.__module__}.{klass.__qualname__}.{attr}"
            place = _definition(vars(klass)[attr], qualified)
            if place is not None and place[2]:
                return place
    return None


def _split_module(name: str) -> tuple[str, str, str]:
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in sys.modules:
            return module, ".", ".".join(parts[cut:])
    return "", "", name


def _class_docstrings(
    cls: type, own: list[tuple[int, str]], class_content: str
) -> list[tuple[int, str]]:
    """The docstrings autodoc shows for a class, as ``autoclass_content`` says."""
    init = vars(cls).get("__init__")
    init_docs: list[tuple[int, str]] = []
    if init is not None:
        place = _definition(init, "")
        if place is not None:
            init_docs = place[2]
    if class_content == "init":
        return init_docs or own
    if class_content == "both":
        return own + init_docs
    return own


@functools.cache
def _parse(file: str) -> dict[str, tuple[int, list[tuple[int, str]]]]:
    """Qualified name -> (definition line, [(docstring line, docstring)]) in *file*.

    Covers the module (name ``""``), classes, functions and attributes documented
    by a string after the assignment or by ``#:`` comments before it.
    """
    try:
        with open(file, encoding="utf-8") as stream:
            text = stream.read()
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return {}
    lines = text.splitlines()
    found: dict[str, tuple[int, list[tuple[int, str]]]] = {}
    module_doc = _docstring(tree.body)
    found[""] = (1, [module_doc] if module_doc else [])

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for index, node in enumerate(body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{node.name}"
                doc = _docstring(node.body)
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found.setdefault(name, (first, [doc] if doc else []))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{name}.")
                    for method in node.body:
                        if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            visit_self(method.body, f"{name}.")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                after = _docstring(body[index + 1 : index + 2])
                comment = _comment_before(lines, node.lineno)
                docs = [after] if after else ([comment] if comment else [])
                for target in targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(f"{prefix}{target.id}", (node.lineno, docs))

    def visit_self(body: list[ast.stmt], prefix: str) -> None:
        """``self.name = ...`` in a method: an instance attribute of the class."""
        for index, node in enumerate(body):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        after = _docstring(body[index + 1 : index + 2])
                        comment = _comment_before(lines, node.lineno)
                        docs = [after] if after else ([comment] if comment else [])
                        found.setdefault(f"{prefix}{target.attr}", (node.lineno, docs))
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    visit_self(inner, prefix)

    visit(tree.body, "")
    return found


def _docstring(body: list[ast.stmt]) -> tuple[int, str] | None:
    if body and isinstance(body[0], ast.Expr):
        value = body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.lineno, value.value
    return None


def _comment_before(lines: list[str], lineno: int) -> tuple[int, str] | None:
    """The ``#:`` comment block just above line *lineno* (1-based)."""
    first = lineno - 1
    while first >= 1 and lines[first - 1].strip().startswith("#:"):
        first -= 1
    if first == lineno - 1:
        return None
    text = "\n".join(line.strip()[2:].strip() for line in lines[first : lineno - 1])
    return first + 1, text


def clear_caches() -> None:
    _parse.cache_clear()

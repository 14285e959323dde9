"""What is installed: distributions behind inventories, and targets found by import."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.machinery
import importlib.metadata
import os
import re
import sys
import sysconfig
import types
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Distribution:
    """An installed distribution and the top-level modules it provides."""

    name: str
    version: str
    top_levels: frozenset[str]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ImportResult:
    """``found``: importable; ``missing``: the package lacks it; ``unknown``: cannot tell."""

    status: Literal["found", "missing", "unknown"]
    reason: str = ""


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    try:
        return importlib.metadata.packages_distributions()
    except Exception:
        return {}


def _tops_of(dist: importlib.metadata.Distribution) -> frozenset[str]:
    """Top-level import names of one distribution, without scanning all of them."""
    listed = dist.read_text("top_level.txt")
    if listed:
        return frozenset(line.strip() for line in listed.splitlines() if line.strip())
    tops = set()
    for file in dist.files or ():
        parts = file.parts
        if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")):
            continue
        if len(parts) > 1:
            tops.add(parts[0])
        elif parts[0].endswith(".py"):
            tops.add(parts[0][:-3])
    return frozenset(top for top in tops if top.isidentifier())


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_distribution(
    *, inv_name: str, project: str, modules: Iterable[str], configured: str | None
) -> Distribution | None:
    """The installed distribution an inventory documents, or None.

    Tried in order: the configured name, the intersphinx name, the inventory's project
    name, then the distribution that provides the inventory's top-level modules.
    """
    names = [n for n in (configured, inv_name, project) if n]
    found = _first_installed(names)
    if found is not None or configured is not None:
        return found
    # Mapping modules to distributions reads every installed distribution's file
    # list: only for top-level modules that are importable and not the stdlib's.
    tops = sorted(_third_party({m.partition(".")[0] for m in modules}))
    if not tops:
        return None
    providers = _packages_distributions()
    return _first_installed([name for top in tops for name in providers.get(top, ())])


def _first_installed(names: Iterable[str]) -> Distribution | None:
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except (importlib.metadata.PackageNotFoundError, ValueError):
            continue
        real_name = dist.metadata["Name"] or name
        found = _tops_of(dist) or frozenset({name.replace("-", "_")})
        return Distribution(name=real_name, version=dist.version, top_levels=found)
    return None


def _third_party(tops: Iterable[str]) -> set[str]:
    """The names in *tops* importable from outside the standard library's folders.

    Looked up with the path finder's cached directory listings; nothing is imported.
    ``sys.stdlib_module_names`` leaves out a few the standard library ships, such
    as ``test``; no distribution provides ``__main__``.
    """
    stdlib = {
        os.path.normcase(os.path.realpath(p))
        for key in ("stdlib", "platstdlib")
        if (p := sysconfig.get_path(key))
    }
    stdlib |= {os.path.join(p, "lib-dynload") for p in stdlib}
    found = set()
    for top in set(tops) - sys.stdlib_module_names - {"__main__"}:
        if not top.isidentifier():
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
            where = os.path.dirname(spec.origin)
            if spec.submodule_search_locations is not None:
                where = os.path.dirname(where)  # a package: the folder above it
            places = [where]
        else:
            places = [os.path.dirname(p) for p in spec.submodule_search_locations or ()]
        if any(os.path.normcase(os.path.realpath(p)) not in stdlib for p in places):
            found.add(top)
    return found


def major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"v?(\d+)(?:\.(\d+))?", version.strip())
    if match is None:
        return None
    return int(match[1]), int(match[2] or 0)


@dataclasses.dataclass(frozen=True, slots=True)
class _Walk:
    """Where the walk from the top-level module down *target* ended."""

    result: ImportResult
    #: The object found (``found`` only), and the deepest module imported on the way.
    obj: object = None
    module: types.ModuleType | None = None


@functools.cache
def _walk(target: str) -> _Walk:
    parts = target.split(".")
    try:
        obj: object = importlib.import_module(parts[0])
    except ModuleNotFoundError as exc:
        if exc.name == parts[0]:
            return _Walk(ImportResult(status="missing", reason=f"no module named {parts[0]!r}"))
        return _Walk(ImportResult(status="unknown", reason=f"importing {parts[0]}: {short(exc)}"))
    except BaseException as exc:  # the package's import code, not ours
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _Walk(ImportResult(status="unknown", reason=f"importing {parts[0]}: {short(exc)}"))
    module = obj if isinstance(obj, types.ModuleType) else None
    path = parts[0]
    for part in parts[1:]:
        parent, path = obj, f"{path}.{part}"
        try:
            obj = getattr(parent, part)
        except AttributeError:
            pass
        except Exception as exc:
            reason = f"{path}: {short(exc)}"
            return _Walk(ImportResult(status="unknown", reason=reason), None, module)
        else:
            if isinstance(obj, types.ModuleType):
                module = obj
            continue
        if isinstance(parent, types.ModuleType):
            try:
                obj = module = importlib.import_module(path)
                continue
            except ModuleNotFoundError as exc:
                if exc.name != path:
                    reason = f"importing {path}: {short(exc)}"
                    return _Walk(ImportResult(status="unknown", reason=reason), None, module)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                reason = f"importing {path}: {short(exc)}"
                return _Walk(ImportResult(status="unknown", reason=reason), None, module)
            if "__getattr__" in vars(parent):
                # a module that makes names on demand: absent now says nothing
                reason = f"module {parent.__name__!r} makes its names on demand"
                return _Walk(ImportResult(status="unknown", reason=reason), None, module)
            owner = getattr(parent, "__name__", path.rpartition(".")[0])
            reason = f"module {owner!r} has no attribute {part!r}"
            return _Walk(ImportResult(status="missing", reason=reason), None, module)
        if isinstance(parent, type):
            if part in instance_attributes(parent):
                # set on each instance: there is no object to go on with
                if parts[len(path.split(".")) :]:
                    reason = f"{path} is set on each instance"
                    return _Walk(ImportResult(status="unknown", reason=reason), None, module)
                return _Walk(ImportResult(status="found"), None, module)
            if any("__getattr__" in vars(k) for k in parent.__mro__[:-1]):
                reason = f"{parent.__qualname__!r} makes its attributes on demand"
                return _Walk(ImportResult(status="unknown", reason=reason), None, module)
            reason = f"{parent.__qualname__!r} has no attribute {part!r}"
            return _Walk(ImportResult(status="missing", reason=reason), None, module)
        # an instance, a function...: what it holds is not known without running code
        reason = f"{path.rpartition('.')[0]} is not a module or a class"
        return _Walk(ImportResult(status="unknown", reason=reason), None, module)
    return _Walk(ImportResult(status="found"), obj, module)


def locate(target: str) -> ImportResult:
    """Import the longest module prefix of *target*, then walk the rest by attribute.

    ``missing`` only when a module or a class was reached and surely lacks the
    next name (instance attributes included: see :func:`instance_attributes`).
    Nothing raised by the imported code escapes.
    """
    return _walk(target).result


def same_object(target: str, other: str) -> bool:
    """Whether two dotted names lead to one and the same installed object."""
    first, second = _walk(target), _walk(other)
    if first.result.status != "found" or second.result.status != "found":
        return False
    if first.obj is None:
        return False
    # typing's aliases of classes (typing.Pattern for re.Pattern) name the class too
    return second.obj is first.obj or getattr(second.obj, "__origin__", None) is first.obj


_ADDED: Final = re.compile(r"versionadded::\s*v?(\d+(?:\.\d+)?)")


def added_in(target: str) -> tuple[int, int] | None:
    """The version the installed object says it was added in (``.. versionadded::``).

    The lowest one its docstring names: later ones are about its parameters.
    """
    walk = _walk(target)
    if walk.result.status != "found" or walk.obj is None:
        return None
    doc = getattr(walk.obj, "__doc__", None)
    if not isinstance(doc, str):
        return None
    found = [major_minor(version) for version in _ADDED.findall(doc)]
    versions = [version for version in found if version is not None]
    return min(versions) if versions else None


def providing_distribution(target: str) -> str | None:
    """The name of the distribution that installed the module *target* lives in.

    Several distributions can share a top-level namespace package (``zope``);
    the module's file tells which one it is.
    """
    module = _walk(target).module
    if module is None:
        return None
    name = module.__name__
    file = getattr(module, "__file__", None)
    candidates = _packages_distributions().get(name.partition(".")[0], [])
    if not file:
        return candidates[0] if len(candidates) == 1 else None
    wanted = os.path.normcase(os.path.abspath(file))
    for candidate in dict.fromkeys(candidates):
        if wanted in _files_of(candidate):
            return candidate
    # an editable install lists no module file: one candidate is still an answer
    return candidates[0] if len(set(candidates)) == 1 else None


@functools.cache
def _files_of(dist_name: str) -> frozenset[str]:
    try:
        dist = importlib.metadata.distribution(dist_name)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return frozenset()
    return frozenset(
        os.path.normcase(os.path.abspath(str(dist.locate_file(file)))) for file in dist.files or ()
    )


@functools.cache
def instance_attributes(cls: type) -> frozenset[str]:
    """Names each instance of *cls* gets: annotations, ``__slots__``, and what
    ``__init__`` (its own or a base class's) assigns to ``self``."""
    names: set[str] = set()
    for klass in cls.__mro__[:-1]:
        names.update(getattr(klass, "__annotations__", {}) or {})
        slots = vars(klass).get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
        init = vars(klass).get("__init__")
        if init is not None:
            names |= _assigned_to_self(init)
    return frozenset(names)


def _assigned_to_self(function: object) -> set[str]:
    import ast
    import inspect
    import textwrap

    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(function)))  # type: ignore[arg-type]
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for item in ast.walk(target):
                if (
                    isinstance(item, ast.Attribute)
                    and isinstance(item.value, ast.Name)
                    and item.value.id == "self"
                ):
                    names.add(item.attr)
    return names


def short(exc: BaseException, limit: int = 160) -> str:
    """An exception as a short line: its type and the first line of its text."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return shorten(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, limit)


def shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def clear_caches() -> None:
    """Forget what earlier builds found: the installed packages may have changed."""
    for cached in (_walk, _files_of, instance_attributes, _packages_distributions):
        cached.cache_clear()

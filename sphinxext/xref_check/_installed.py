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
from typing import TYPE_CHECKING, Literal

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


@functools.cache
def locate(target: str) -> ImportResult:
    """Import the longest module prefix of *target*, then walk the rest by attribute.

    Callers pass only targets under a top-level module of the documented
    distribution. Nothing raised by the imported code escapes.
    """
    parts = target.split(".")
    try:
        obj: object = importlib.import_module(parts[0])
    except ModuleNotFoundError as exc:
        if exc.name == parts[0]:
            return ImportResult(status="missing", reason=f"no module named {parts[0]!r}")
        return ImportResult(status="unknown", reason=f"importing {parts[0]}: {exc}")
    except BaseException as exc:  # the package's import code, not ours
        if isinstance(exc, KeyboardInterrupt):
            raise
        return ImportResult(status="unknown", reason=f"importing {parts[0]}: {exc!r}")
    path = parts[0]
    for part in parts[1:]:
        parent, path = obj, f"{path}.{part}"
        try:
            obj = getattr(parent, part)
            continue
        except AttributeError:
            pass
        except Exception as exc:
            return ImportResult(status="unknown", reason=f"{path}: {exc!r}")
        if isinstance(parent, types.ModuleType):
            try:
                obj = importlib.import_module(path)
                continue
            except ModuleNotFoundError as exc:
                if exc.name != path:
                    return ImportResult(status="unknown", reason=f"importing {path}: {exc}")
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return ImportResult(status="unknown", reason=f"importing {path}: {exc!r}")
            owner = getattr(parent, "__name__", path.rpartition(".")[0])
            return ImportResult(
                status="missing", reason=f"module {owner!r} has no attribute {part!r}"
            )
        if isinstance(parent, type) and _declared(parent, part):
            return ImportResult(status="found")
        owner = getattr(parent, "__qualname__", type(parent).__name__)
        return ImportResult(status="missing", reason=f"{owner!r} has no attribute {part!r}")
    return ImportResult(status="found")


def _declared(cls: type, name: str) -> bool:
    """Instance attributes show only in annotations or ``__slots__``."""
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            return True
        slots = getattr(klass, "__slots__", ())
        if name in ((slots,) if isinstance(slots, str) else slots):
            return True
    return False

"""Explain one reference: from a ``pending_xref`` to a :class:`Finding` (plain data).

Nothing here logs; :mod:`sphinxext.xref_check._report` decides what becomes a warning.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from operator import attrgetter
from typing import TYPE_CHECKING, Final

from sphinxext.xref_check._compat import current_docname
from sphinxext.xref_check._index import Entry, TargetIndex
from sphinxext.xref_check._installed import (
    added_in,
    locate,
    major_minor,
    providing_distribution,
    same_object,
)
from sphinxext.xref_check._shared import Subtype
from sphinxext.xref_check._source import docstring_location, docstring_source, node_source_line

if TYPE_CHECKING:
    from collections.abc import Container, Iterable, Mapping
    from pathlib import Path

    from sphinx.addnodes import pending_xref
    from sphinx.environment import BuildEnvironment

    from sphinxext.xref_check._config import XrefConfig
    from sphinxext.xref_check._load import InventoryStatus


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Reference:
    """What a ``pending_xref`` asks for, as plain data."""

    docname: str
    file: str
    line: int | None
    #: Where the warning points when not at the node: ``"path:line"`` of a docstring.
    location: str | None
    domain: str
    reftype: str
    #: The target as written, whitespace around its dots removed.
    target: str
    #: The target and its forms qualified by the current module and class.
    variants: tuple[str, ...]
    #: An explicit inventory (``:external+inv:`` or ``inv:target``).
    inventory: str | None
    external: bool
    #: The module and class the reference is written in (``py`` only).
    context: tuple[str, ...] = ()
    #: The target as written had whitespace in it (a line break in a docstring).
    wrapped: bool = False

    @property
    def role(self) -> str:
        return f"{self.domain}:{self.reftype}" if self.domain else self.reftype


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One reference that needs the author's attention."""

    docname: str
    file: str
    line: int | None
    role: str
    target: str
    cause: Subtype
    message: str
    suggestions: tuple[str, ...] = ()
    #: The inventory the cause is about, if any.
    inventory: str | None = None

    def to_json(self, *, baselined: bool) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "docname": self.docname,
            "role": self.role,
            "target": self.target,
            "cause": self.cause.value,
            "message": self.message,
            "suggestions": list(self.suggestions),
            "baselined": baselined,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Finding:
        line = data.get("line")
        suggestions = data.get("suggestions") or []
        return cls(
            docname=str(data["docname"]),
            file=str(data["file"]),
            line=line if isinstance(line, int) else None,
            role=str(data["role"]),
            target=str(data["target"]),
            cause=Subtype(str(data["cause"])),
            message=str(data.get("message", "")),
            suggestions=tuple(str(s) for s in suggestions) if isinstance(suggestions, list) else (),
        )


#: Whitespace around the dots of a dotted name: a target wrapped across lines.
_WRAPPED: Final = re.compile(r"\s*\.\s*")
#: A dotted Python name.
_DOTTED: Final = re.compile(r"[~.]?[^\W\d]\w*(?:\.[^\W\d]\w*)*")
#: A dotted name followed by a call's arguments: ``datetime.now(tz=utc)``.
_CALL: Final = re.compile(r"([^\W\d][\w.]*)\s*\(.*\)\s*$")


def _cleaned(written: str) -> tuple[str, bool]:
    """The target with the whitespace of a line break removed, and whether it had any."""
    joined = _WRAPPED.sub(".", written).strip()
    if joined != written and _DOTTED.fullmatch(joined.partition(":")[2] or joined):
        return joined, True
    return " ".join(written.split()), False


def reference_of(
    node: pending_xref,
    *,
    env: BuildEnvironment,
    inventory_names: Container[str],
    files: dict[str, str],
) -> Reference:
    """The reference *node* asks for; *files* caches each source's relative path."""
    docname = node.get("refdoc") or current_docname(env)
    source, line, own = node_source_line(node)
    location = None
    if source and docstring_source(source) is not None:
        class_content = str(getattr(env.config, "autoclass_content", "class"))
        path, line = docstring_location(source, line, own=own, class_content=class_content)
        source = path
        location = f"{path}:{line}" if line else None
    if source:
        # resolving a path costs system calls, and a page holds many references
        file = files.get(source)
        if file is None:
            file = files[source] = _relative(source, env.srcdir)
        if location is None and line:
            # the node's own place, or its nearest ancestor's when it has none
            location = f"{source}:{line}"
    else:
        # nodes autodoc makes from an inherited docstring's signature have no source
        file = str(env.doc2path(docname, False))
        location = str(env.doc2path(docname))
    domain = node.get("refdomain") or ""
    written = node["reftarget"]
    target, wrapped = _cleaned(written)
    inventory = node.get("inventory") if node.get("intersphinx") else None
    prefix, sep, rest = target.partition(":")
    if sep and inventory is None and prefix in inventory_names:
        inventory, target = prefix, rest
    variants = [target.lstrip(".~")]
    context: tuple[str, ...] = ()
    if domain in {"py", ""}:
        module, cls = node.get("py:module"), node.get("py:class")
        if module and cls:
            variants.append(f"{module}.{cls}.{variants[0]}")
            context = (f"{module}.{cls}", module)
        elif module:
            context = (module,)
        if module:
            variants.append(f"{module}.{variants[0]}")
    return Reference(
        docname=docname,
        file=file,
        line=line,
        location=location,
        domain=domain,
        reftype=node["reftype"],
        target=target,
        variants=tuple(variants),
        inventory=inventory,
        external=bool(node.get("intersphinx")),
        context=context,
        wrapped=wrapped,
    )


def _relative(source: str, srcdir: Path) -> str:
    source = (docstring_source(source) or (source, ""))[0]
    try:
        return (srcdir.joinpath(source)).resolve().relative_to(srcdir.resolve()).as_posix()
    except ValueError:
        return source


class Checker:
    """Everything needed to explain references, built once per build."""

    def __init__(
        self,
        *,
        env: BuildEnvironment,
        config: XrefConfig,
        statuses: Iterable[InventoryStatus],
    ) -> None:
        self.env = env
        self.config = config
        self.statuses = {status.name: status for status in statuses}
        self.failed = {name: s for name, s in self.statuses.items() if not s.loaded}
        self.covered = frozenset(top for s in self.statuses.values() for top in s.tops)
        #: Loaded inventories of an installed distribution: the import check's scope.
        self.installed = [s for s in self.statuses.values() if s.loaded and s.distribution]
        self._index: TargetIndex | None = None
        self._roles: dict[str, str] = {}
        #: Source file -> its path relative to the source folder, as reported.
        self.files: dict[str, str] = {}
        self._lookup_types: dict[tuple[str, str], tuple[str, ...]] = {}

    # -- the index, built on the first reference that needs it -----------------------

    @property
    def index(self) -> TargetIndex:
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def _build_index(self) -> TargetIndex:
        disabled = set(self.env.config.intersphinx_disabled_reftypes)
        named: Mapping[str, Mapping[str, Mapping[str, object]]] = getattr(
            self.env, "intersphinx_named_inventory", {}
        )
        sources: dict[str | None, Mapping[str, Iterable[str]]] = {}
        for inv_name, inventory in named.items():
            # intersphinx's own dictionaries, not copies: the index only reads them
            sources[inv_name] = {
                objtype: items
                for objtype, items in inventory.items()
                if objtype not in disabled and f"{objtype.partition(':')[0]}:*" not in disabled
            }
        own: dict[str, list[str]] = {}
        # a dict before Sphinx 8.2, a container with .sorted() since: .values() is in both
        for domain in sorted(self.env.domains.values(), key=attrgetter("name")):
            for name, _disp, objtype, _doc, _anchor, _prio in domain.get_objects():
                own.setdefault(f"{domain.name}:{objtype}", []).append(name)
        sources[None] = own
        return TargetIndex.from_inventories(sources)

    # -- scope --------------------------------------------------------------------

    def in_scope(self, ref: Reference) -> bool:
        if self.config.scope == "all" or ref.external or ref.inventory is not None:
            return True
        if ref.domain not in {"py", ""}:
            return False
        return any(v.partition(".")[0] in self.covered for v in ref.variants)

    # -- resolution ---------------------------------------------------------------

    def resolves_as_is(self, node: pending_xref) -> bool:
        """Whether intersphinx's first lookup surely resolves *node*.

        That lookup takes the target as written and the role's object types, less
        the disabled ones, in the merged inventory; when it finds the target,
        intersphinx links it. False says nothing: ask intersphinx. Most references
        resolve, and this is a few dictionary lookups where intersphinx's resolver
        also builds the link node.
        """
        domain_name = node.get("refdomain")
        reftype = node["reftype"]
        if not domain_name or reftype == "any":
            return False
        objtypes = self._lookup_types.get((domain_name, reftype))
        if objtypes is None:
            objtypes = self._lookup_types[domain_name, reftype] = self._intersphinx_types(
                domain_name, reftype
            )
        inventory: Mapping[str, Mapping[str, object]] = getattr(
            self.env, "intersphinx_inventory", {}
        )
        target = node["reftarget"]
        return any(target in inventory.get(objtype, ()) for objtype in objtypes)

    def _intersphinx_types(self, domain_name: str, reftype: str) -> tuple[str, ...]:
        """The object types intersphinx looks a ``domain:reftype`` reference up in."""
        disabled = set(self.env.config.intersphinx_disabled_reftypes)
        if "*" in disabled or f"{domain_name}:*" in disabled:
            return ()
        try:
            domain = self.env.domains[domain_name]
        except KeyError:
            return ()
        types = dict.fromkeys(domain.objtypes_for_role(reftype) or ())
        if domain_name == "std" and "cmdoption" in types:
            types["option"] = None
        if domain_name == "py" and "attribute" in types:
            types["method"] = None
        qualified = (f"{domain_name}:{t}" for t in types)
        return tuple(t for t in qualified if t not in disabled)

    # -- roles ----------------------------------------------------------------------

    def role_objtypes(self, ref: Reference) -> set[str] | None:
        """``domain:type`` names the reference's role links to; None for any."""
        if not ref.domain or ref.reftype == "any":
            return None
        try:
            domain = self.env.domains[ref.domain]
        except KeyError:
            return set()
        types = set(domain.objtypes_for_role(ref.reftype) or ())
        if ref.domain == "py" and "attribute" in types:
            types.add("method")  # properties were stored as methods before Sphinx 2.1
        if ref.domain == "std" and "cmdoption" in types:
            types.add("option")
        return {f"{ref.domain}:{t}" for t in types}

    def paste(self, entry: Entry) -> str:
        """The reference to paste for *entry*, e.g. ``:meth:`gevent.hub.Hub.join```."""
        role = self._roles.get(entry.objtype)
        if role is None:
            domain_name, _, objtype = entry.objtype.partition(":")
            role = objtype
            try:
                obj = self.env.domains[domain_name].object_types.get(objtype)
            except KeyError:
                obj = None
            if obj is not None and obj.roles:
                role = obj.roles[0]
            if domain_name not in {"std", self.env.config.primary_domain}:
                role = f"{domain_name}:{role}"
            self._roles[entry.objtype] = role
        return f":{role}:`{entry.name}`"

    def noun(self, objtype: str) -> str:
        """*objtype* as a reader says it, with its article: "an attribute"."""
        domain_name, _, name = objtype.partition(":")
        noun = _NOUNS.get(objtype)
        if noun is None:
            try:
                obj = self.env.domains[domain_name].object_types.get(name)
            except KeyError:
                obj = None
            noun = str(obj.lname) if obj is not None else name
        return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"

    def _where(self, entry: Entry) -> str:
        return f"in inventory {entry.inventory!r}" if entry.inventory else "in this project"

    # -- the analysis -------------------------------------------------------------

    def explain(self, ref: Reference) -> Finding:
        """Why an in-scope reference did not resolve."""
        wanted = self.role_objtypes(ref)
        head = f"{ref.role} reference target not found: {ref.target}"
        failed = self.failed_inventory(ref)
        if failed is not None:
            return self._finding(
                ref,
                Subtype.INVENTORY_UNAVAILABLE,
                f"{ref.role} reference {ref.target} was neither linked nor checked: "
                f"inventory {failed!r} did not load",
                inventory=failed,
            )
        if ref.wrapped:
            entries = self._entries(ref.variants[0], wanted)
            if entries:
                paste = self.paste(entries[0])
                return self._finding(
                    ref,
                    Subtype.NOT_FOUND,
                    f"{head}; the target is split by whitespace (a line break?): "
                    f"use {paste}",
                    suggestions=(paste,),
                    inventory=entries[0].inventory,
                )
        call = _CALL.match(ref.target) if ref.domain in {"py", ""} else None
        if call is not None:
            entries = self._entries(call[1].lstrip("~."), wanted)
            if entries:
                paste = self.paste(entries[0])
                return self._finding(
                    ref,
                    Subtype.NOT_FOUND,
                    f"{head}; a target is a name, without a call's arguments: use {paste}",
                    suggestions=(paste,),
                    inventory=entries[0].inventory,
                )
        if ref.domain in {"py", ""} and not _DOTTED.fullmatch(ref.target):
            return self._finding(
                ref,
                Subtype.NOT_FOUND,
                f"{head}; it is not a Python name (text taken for a type or a "
                f"signature?)",
            )
        wrong = self._wrong_role(ref, wanted, head)
        if wrong is not None:
            return wrong
        alias = self._documented_alias(ref, wanted)
        if alias is not None:
            paste = self.paste(alias)
            return self._finding(
                ref,
                Subtype.NOT_FOUND,
                f"{head}; the same object is documented as {alias.name} "
                f"{self._where(alias)}: use {paste}",
                suggestions=(paste,),
                inventory=alias.inventory,
            )
        version = self._installed_not_in_inventory(ref)
        if version is not None:
            return version
        suggestions = self._suggestions(ref, wanted)
        installed = self._installed_undocumented(ref)
        last = ref.target.rpartition(".")[2]
        if installed is not None and not any(s.endswith(f".{last}`") for s in suggestions):
            # the import found it: names merely alike would mislead
            return self._finding(ref, Subtype.NOT_FOUND, f"{head}; {installed}")
        if suggestions:
            return self._finding(
                ref,
                Subtype.NOT_FOUND,
                f"{head}; did you mean {_or_list(suggestions)}?",
                suggestions=suggestions,
            )
        names = ", ".join(repr(n) for n in sorted(self.statuses) if self.statuses[n].loaded)
        where = f"this project or the inventories {names}" if names else "this project"
        return self._finding(ref, Subtype.NOT_FOUND, f"{head}; nothing similar in {where}")

    def _installed_undocumented(self, ref: Reference) -> str | None:
        """"it is in installed X, but ... does not document it", when the import says so."""
        if not self.config.import_check or ref.domain not in {"py", ""}:
            return None
        for variant in ref.variants:
            if "." not in variant:
                continue
            status = self._status_for(variant)
            if status is None or status.distribution is None:
                continue
            if locate(variant).status == "found":
                dist = status.distribution
                return (
                    f"{variant} is in installed {dist.name} {dist.version}, but "
                    f"{status.describe()} does not document it"
                )
        return None

    def _entries(self, name: str, wanted: set[str] | None) -> list[Entry]:
        """The entries named *name*, those the role links to first."""
        entries = self.index.lookup(name)
        if wanted:
            entries.sort(key=lambda e: e.objtype not in wanted)
        return entries

    def _wrong_role(self, ref: Reference, wanted: set[str] | None, head: str) -> Finding | None:
        """The target exists as written, as another type than the role links to.

        Only a dotted name says which object is meant: a bare ``readline`` that
        matches a module is no evidence that the author meant the module.
        """
        if wanted is None:
            return None
        for variant in ref.variants:
            if "." not in variant:
                continue
            entries = self.index.lookup(variant)
            if not entries or any(e.objtype in wanted for e in entries):
                continue
            entry = entries[0]
            paste = self.paste(entry)
            expected = _or_list(self._role_nouns(ref))
            if expected:
                what = f"not {expected}"
            else:
                what = f"which :{ref.reftype}: cannot link to in an inventory"
            return self._finding(
                ref,
                Subtype.WRONG_ROLE,
                f"{head}; it is {self.noun(entry.objtype)} {self._where(entry)}, "
                f"{what}: use {paste}",
                suggestions=(paste,),
                inventory=entry.inventory,
            )
        return None

    def _role_nouns(self, ref: Reference) -> tuple[str, ...]:
        """What the role links to, as the domain declares it: "an attribute or a property"."""
        try:
            objtypes = self.env.domains[ref.domain].objtypes_for_role(ref.reftype) or ()
        except KeyError:
            return ()
        return tuple(dict.fromkeys(self.noun(f"{ref.domain}:{t}") for t in objtypes))

    def _suggestions(self, ref: Reference, wanted: set[str] | None) -> tuple[str, ...]:
        domains = {ref.domain} if ref.domain else {"py", "std"}
        target = ref.variants[0]
        parent = target.rpartition(".")[0]
        # a parent that exists says the module is right: look no further than its package
        within = target.partition(".")[0] if parent and self.index.lookup(parent) else None
        entries = self.index.suggest(
            target, domains=domains, wanted=wanted, context=ref.context, within=within
        )
        return tuple(self.paste(e) for e in entries)

    def _finding(
        self,
        ref: Reference,
        cause: Subtype,
        message: str,
        *,
        suggestions: tuple[str, ...] = (),
        inventory: str | None = None,
    ) -> Finding:
        return Finding(
            docname=ref.docname,
            file=ref.file,
            line=ref.line,
            role=ref.role,
            target=ref.target,
            cause=cause,
            message=message,
            suggestions=suggestions,
            inventory=inventory,
        )

    def failed_inventory(self, ref: Reference) -> str | None:
        if ref.inventory is not None:
            return ref.inventory if ref.inventory in self.failed else None
        for name, status in self.failed.items():
            under = any(v.partition(".")[0] in status.tops for v in ref.variants)
            if under and not any(self.index.lookup(v) for v in ref.variants):
                return name
        return None

    # -- what is installed ----------------------------------------------------------

    def _status_for(self, target: str) -> InventoryStatus | None:
        """The loaded inventory of the distribution that installed *target*'s module."""
        top = target.partition(".")[0]
        candidates = [
            s
            for s in self.installed
            if s.distribution is not None and top in s.distribution.top_levels
        ]
        if not candidates:
            return None
        provider = providing_distribution(target)
        if provider is None:
            return None
        wanted = _normalise(provider)
        for status in candidates:
            assert status.distribution is not None
            if _normalise(status.distribution.name) == wanted:
                return status
        return None

    def _skewed(self, status: InventoryStatus) -> bool:
        """Whether the inventory documents another major.minor than is installed."""
        if status.distribution is None:
            return False
        documented = major_minor(status.version)
        installed = major_minor(status.distribution.version)
        return documented is not None and installed is not None and documented != installed

    def _documented_alias(self, ref: Reference, wanted: set[str] | None) -> Entry | None:
        """An inventory entry for the very object the target names, under another name.

        Packages re-export objects (``pkg.Thing`` is ``pkg.module.Thing``) and
        document one of the names; the import check tells which ones are the same.
        """
        if not self.config.import_check or ref.domain not in {"py", ""}:
            return None
        for variant in ref.variants:
            if "." not in variant:
                continue
            stdlib = variant.partition(".")[0] in sys.stdlib_module_names
            if not stdlib and self._status_for(variant) is None:
                continue
            if locate(variant).status != "found":
                continue
            top = variant.partition(".")[0]
            for entry in self.index.same_last_name(variant, domain="py"):
                other_top = entry.name.partition(".")[0]
                if entry.name == variant:
                    continue
                if other_top != top and not (stdlib and other_top in sys.stdlib_module_names):
                    continue
                if wanted is not None and entry.objtype not in wanted:
                    continue
                if same_object(variant, entry.name):
                    return entry
        return None

    def _installed_not_in_inventory(self, ref: Reference) -> Finding | None:
        """``version``: the target is installed and the other version's inventory lacks it.

        Said only when the inventory documents another version than is installed,
        the distribution that installed the module has that inventory, the import
        finds the object, and the object says it was added after the version the
        inventory documents. An object without that is as likely documented in no
        version at all: linking to another version's documentation would not help.
        """
        if not self.config.import_check or ref.domain not in {"py", ""}:
            return None
        for variant in ref.variants:
            if "." not in variant:
                continue
            status = self._status_for(variant)
            if status is None or status.distribution is None or not self._skewed(status):
                continue
            if locate(variant).status != "found":
                continue
            added, documented = added_in(variant), major_minor(status.version)
            if added is None or documented is None or added <= documented:
                continue
            dist = status.distribution
            return self._finding(
                ref,
                Subtype.VERSION,
                f"{ref.role} reference target not found: {variant} is in installed "
                f"{dist.name} {dist.version} but not in {status.describe()}; link to the "
                f"documentation of the installed version in "
                f"intersphinx_mapping[{status.name!r}]",
                inventory=status.name,
            )
        return None

    def may_be_gone(self, domain: str) -> bool:
        """Whether a resolved reference of *domain* needs :meth:`gone_from_installed`."""
        return (
            self.config.import_check
            and domain == "py"
            and any(self._skewed(s) for s in self.installed)
        )

    def gone_from_installed(self, ref: Reference) -> Finding | None:
        """For a reference an inventory resolves: is it gone from the installed package?"""
        if not self.may_be_gone(ref.domain):
            return None
        wanted = self.role_objtypes(ref) or set()
        named: Mapping[str, Mapping[str, Mapping[str, object]]] = getattr(
            self.env, "intersphinx_named_inventory", {}
        )
        target = ref.variants[0]
        if "." not in target:
            return None
        top = target.partition(".")[0]
        for status in self.installed:
            dist = status.distribution
            if dist is None or top not in dist.top_levels or not self._skewed(status):
                continue
            inventory = named.get(status.name, {})
            if not any(target in inventory.get(objtype, ()) for objtype in wanted):
                continue
            result = locate(target)
            if result.status != "missing":
                return None
            # the module must come from this distribution, not a namespace sibling
            provider = providing_distribution(target)
            if provider is None or _normalise(provider) != _normalise(dist.name):
                return None
            return self._finding(
                ref,
                Subtype.VERSION,
                f"{ref.role} reference {target} resolves in {status.describe()} but is "
                f"gone from installed {dist.name} {dist.version} ({result.reason}); link "
                f"to the documentation of the installed version, or update the reference",
                inventory=status.name,
            )
        return None


#: How a reader names the object types of the Python domain, where Sphinx's
#: names ("data") do not read as English nouns.
_NOUNS: Final = {
    "py:data": "constant or variable",
    "py:attribute": "attribute",
    "py:method": "method",
    "py:classmethod": "class method",
    "py:staticmethod": "static method",
    "py:function": "function",
    "py:class": "class",
    "py:exception": "exception",
    "py:module": "module",
    "py:property": "property",
    "py:type": "type alias",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _or_list(items: tuple[str, ...]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"

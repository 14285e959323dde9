"""One index of every known target, for exact and near lookups.

Exact lookups ask the inventories' own dictionaries, so they cost nothing to set up.
Near lookups need an index of one domain's names, built on the first query into that
domain in one pass over its names, with no object per entry: dictionaries keyed by
the lower-case name, the parent and the lower-case last component, and a trigram index
of last components built on first use. Lookups never scan all entries: only the few
candidates these give are compared with :mod:`difflib`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import gc
from collections import Counter, defaultdict
from collections.abc import Mapping, Set
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator

#: Above this many siblings, near matches go through the trigram index instead.
_MAX_SIBLINGS: Final = 1500
#: Trigrams shared by more last components than this say nothing; skip them.
_MAX_POSTING: Final = 4000
_CUTOFF: Final = 0.6


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One known target: ``objtype`` is ``domain:type``; ``inventory`` None is this project."""

    name: str
    objtype: str
    inventory: str | None

    @property
    def domain(self) -> str:
        return self.objtype.partition(":")[0]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while an index is built.

    An index is tens of thousands of new containers and no garbage; built in
    the middle of a Sphinx build, they set off full collections over Sphinx's
    whole heap, which cost more than building the index itself.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class _DomainIndex:
    """The index of one domain's names."""

    __slots__ = ("by_last", "children", "lower", "trigrams")

    def __init__(self, names: Iterable[Iterable[str]]) -> None:
        lower: dict[str, list[str]] = {}
        children: defaultdict[str, set[str]] = defaultdict(set)
        by_last: defaultdict[str, set[str]] = defaultdict(set)
        for group in names:
            for name in group:
                low = name.lower()
                same = lower.get(low)
                if same is None:
                    lower[low] = [name]
                elif name not in same:
                    same.append(name)
                else:
                    continue
                parent, _, last = name.rpartition(".")
                children[parent].add(last)
                by_last[last.lower()].add(name)
        self.lower = lower
        self.children = children
        self.by_last = by_last
        self.trigrams: defaultdict[str, list[str]] = defaultdict(list)

    def candidates(self, target: str) -> set[str]:
        found: set[str] = set(self.lower.get(target.lower(), ()))
        parent, _, last = target.rpartition(".")
        siblings = self.children.get(parent)
        if siblings is not None and parent and len(siblings) <= _MAX_SIBLINGS:
            for match in difflib.get_close_matches(last, siblings, n=5, cutoff=_CUTOFF):
                found.add(f"{parent}.{match}")
        elif parent:
            found |= self._repair_middle(target)
        found |= self.by_last.get(last.lower(), set())
        if len(found) < 3:
            found |= self._by_trigrams(last.lower())
        return found

    def _repair_middle(self, target: str) -> set[str]:
        """The deepest existing ancestor is kept; the next component is matched near."""
        parts = target.split(".")
        for depth in range(len(parts) - 2, 0, -1):
            ancestor = ".".join(parts[:depth])
            siblings = self.children.get(ancestor)
            if siblings is None or len(siblings) > _MAX_SIBLINGS:
                continue
            rest = ".".join(parts[depth + 1 :])
            found = set()
            for match in difflib.get_close_matches(parts[depth], siblings, n=3, cutoff=_CUTOFF):
                candidate = f"{ancestor}.{match}.{rest}"
                if candidate.lower() in self.lower:
                    found.update(self.lower[candidate.lower()])
            return found
        return set()

    def _by_trigrams(self, last_low: str) -> set[str]:
        if not self.trigrams:
            # built on first use: most builds never need it
            with _collector_paused():
                for word in self.by_last:
                    for gram in _trigrams(word):
                        self.trigrams[gram].append(word)
        counts: Counter[str] = Counter()
        for gram in _trigrams(last_low):
            posting = self.trigrams.get(gram)
            if posting is not None and len(posting) <= _MAX_POSTING:
                counts.update(posting)
        best = [word for word, _ in counts.most_common(30)]
        close = difflib.get_close_matches(last_low, best, n=5, cutoff=_CUTOFF)
        found: set[str] = set()
        for word in close:
            names = sorted(self.by_last[word])
            found.update(names[:20])
        return found


class TargetIndex:
    """Every target of every inventory and of the project.

    The inventories are read where they are, never copied; a domain's near-match index
    is built on the first suggestion asked of that domain.
    """

    def __init__(self, inventories: Mapping[str | None, Mapping[str, Iterable[str]]]) -> None:
        self._sources: dict[str | None, dict[str, Collection[str]]] = {
            inv_name: {objtype: _as_set(names) for objtype, names in inventory.items()}
            for inv_name, inventory in inventories.items()
        }
        self._domains: dict[str, _DomainIndex] = {}

    @classmethod
    def from_inventories(
        cls,
        inventories: Mapping[str | None, Mapping[str, Iterable[str]]],
    ) -> TargetIndex:
        """Index ``{inventory name: {objtype: names}}``; the name None is the project."""
        return cls(inventories)

    def lookup(self, target: str) -> list[Entry]:
        """Every entry named *target*, in inventory then objtype order."""
        return [
            Entry(name=target, objtype=objtype, inventory=inv_name)
            for inv_name, inventory in self._sources.items()
            for objtype, names in inventory.items()
            if target in names
        ]

    def _domain(self, domain: str) -> _DomainIndex | None:
        index = self._domains.get(domain)
        if index is None:
            groups = [
                names
                for inventory in self._sources.values()
                for objtype, names in inventory.items()
                if objtype.partition(":")[0] == domain
            ]
            if not groups:
                return None
            with _collector_paused():
                index = self._domains[domain] = _DomainIndex(groups)
        return index

    def same_last_name(self, target: str, *, domain: str) -> list[Entry]:
        """Every entry of *domain* whose last component is *target*'s, exactly."""
        index = self._domain(domain)
        if index is None:
            return []
        last = target.rpartition(".")[2]
        names = sorted(n for n in index.by_last.get(last.lower(), ()) if n.endswith(last))
        return [e for name in names for e in self.lookup(name) if e.domain == domain]

    def suggest(
        self,
        target: str,
        *,
        domains: Iterable[str],
        wanted: Set[str] | None = None,
        context: Iterable[str] = (),
        within: str | None = None,
        limit: int = 3,
    ) -> list[Entry]:
        """Up to *limit* entries near *target*, best first, from the given domains.

        Ranked by the reference's own context first (a sibling of the target, a
        member of a class in the target's module, a member of the module or class
        the reference is written in), then by the same last name, then by the
        object types the role links to (*wanted*), then by how alike the names are.
        A module is seldom meant by a role that does not link to modules. With
        *within*, only names in that top-level package are offered.
        """
        allowed = set(domains)
        low = target.lower()
        parent, _, last = target.rpartition(".")
        scopes = tuple(f"{c}." for c in context if c)
        best: dict[str, tuple[float, Entry]] = {}
        tail = f".{last}"
        for domain in sorted(allowed):
            index = self._domain(domain)
            if index is None:
                continue
            for name in index.candidates(target):
                if within is not None and name.partition(".")[0] != within:
                    continue
                matcher = difflib.SequenceMatcher(None, low, name.lower())
                # the cheap upper bound first: most candidates stop here
                if matcher.quick_ratio() < 0.5 and not name.endswith(tail):
                    continue
                ratio = matcher.ratio()
                entries = [e for e in self.lookup(name) if e.domain in allowed]
                for entry in entries:
                    if name == target and (wanted is None or entry.objtype in wanted):
                        continue  # the target itself, as the role wants it, is not a fix
                    score = _score(
                        name=name,
                        objtype=entry.objtype,
                        ratio=ratio,
                        parent=parent,
                        last=last,
                        scopes=scopes,
                        wanted=wanted,
                    )
                    if score is not None and (name not in best or score > best[name][0]):
                        best[name] = (score, entry)
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
        return [entry for _name, (_score_, entry) in ranked]


def _score(
    *,
    name: str,
    objtype: str,
    ratio: float,
    parent: str,
    last: str,
    scopes: tuple[str, ...],
    wanted: Set[str] | None,
) -> float | None:
    """How good a fix *name* is for the target; None for not one at all."""
    if ratio < 0.5 and not name.endswith(f".{last}"):
        return None
    cand_parent, _, cand_last = name.rpartition(".")
    score = ratio
    if parent and (
        cand_parent == parent
        or (cand_last == last and cand_parent.rpartition(".")[0] == parent)
    ):
        score += 1.0  # a sibling, or the same name one class down in the same module
    elif scopes and name.startswith(scopes):
        score += 1.0  # in the module or class the reference is written in
    if cand_last == last:
        score += 0.8
    elif cand_last.lower() == last.lower():
        score += 0.5
    if wanted and objtype in wanted:
        score += 1.0
    elif wanted is not None and objtype.endswith(":module"):
        score -= 1.0
    if (
        cand_last != last
        and cand_last.lower() == last.lower()
        and cand_last.isupper() != last.isupper()
        and not (wanted and objtype in wanted)
    ):
        return None  # a constant for a function, or the other way round
    return score


def _as_set(names: Iterable[str]) -> Collection[str]:
    """*names* as something with a fast ``in``: intersphinx's dictionaries as they are."""
    if isinstance(names, (Mapping, Set)):
        return names
    return dict.fromkeys(names)

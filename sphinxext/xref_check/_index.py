"""One index of every known target, built once per build, for exact and near lookups.

Lookups never scan all entries: candidates come from dictionaries keyed by the full
name, its lower case, its parent and its last component, and from a trigram index of
last components; only those few candidates are compared with :mod:`difflib`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

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


def _trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


class _DomainIndex:
    """The index of one domain's names."""

    __slots__ = ("by_last", "children", "lower", "trigrams")

    def __init__(self) -> None:
        self.lower: dict[str, list[str]] = defaultdict(list)
        self.children: dict[str, set[str]] = defaultdict(set)
        self.by_last: dict[str, set[str]] = defaultdict(set)
        self.trigrams: dict[str, list[str]] = defaultdict(list)

    def add(self, name: str) -> None:
        low = name.lower()
        names = self.lower[low]
        if name in names:
            return
        names.append(name)
        parent, _, last = name.rpartition(".")
        self.children[parent].add(last)
        self.by_last[last.lower()].add(name)

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
    """Every target of every inventory and of the project, indexed once."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.exact: dict[str, list[Entry]] = defaultdict(list)
        self._domains: dict[str, _DomainIndex] = defaultdict(_DomainIndex)
        for entry in entries:
            known = self.exact[entry.name]
            if entry not in known:
                known.append(entry)
            self._domains[entry.domain].add(entry.name)

    @classmethod
    def from_inventories(
        cls,
        inventories: Mapping[str | None, Mapping[str, Iterable[str]]],
    ) -> TargetIndex:
        """Index ``{inventory name: {objtype: names}}``; the name None is the project."""
        return cls(
            Entry(name=name, objtype=objtype, inventory=inv_name)
            for inv_name, inventory in inventories.items()
            for objtype, names in inventory.items()
            for name in names
        )

    def lookup(self, target: str) -> list[Entry]:
        return self.exact.get(target, [])

    def suggest(self, target: str, *, domains: Iterable[str], limit: int = 3) -> list[Entry]:
        """Up to *limit* entries near *target*, best first, from the given domains."""
        wanted = set(domains)
        scored: dict[str, float] = {}
        low = target.lower()
        for domain in sorted(wanted):
            index = self._domains.get(domain)
            if index is None:
                continue
            for name in index.candidates(target):
                if name != target and name not in scored:
                    ratio = difflib.SequenceMatcher(None, low, name.lower()).ratio()
                    if ratio >= 0.5:
                        scored[name] = ratio
        ranked = sorted(scored, key=lambda name: (-scored[name], name))[:limit]
        result = []
        for name in ranked:
            entries = [e for e in self.exact[name] if e.domain in wanted]
            result.append(entries[0])
        return result

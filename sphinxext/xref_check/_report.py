"""Policy: which findings become warnings, the baseline, and ``xref_check.json``."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Final

from sphinx.errors import ConfigError

from sphinxext.xref_check._check import Finding
from sphinxext.xref_check._shared import LOGGER, Subtype, emit_warning

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from sphinxext.xref_check._shared import Location

REPORT_NAME: Final = "xref_check.json"
#: Findings of documents not rewritten by an incremental build are kept here.
STATE_NAME: Final = "xref_check_state.json"

BaselineKey = tuple[str, str, str]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Baseline:
    """Accepted references: ``(docname, role, target)`` -> line in the baseline file."""

    path: Path
    entries: dict[BaselineKey, int]

    @classmethod
    def read(cls, path: Path) -> Baseline:
        """Parse ``docname role target`` lines; ``#`` starts a comment."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = (
                f"xref_check_baseline: cannot read {path} ({exc.strerror or exc}); create "
                f'it with "python -m sphinxext.xref_check baseline '
                f'<outdir>/{REPORT_NAME} -o {path.name}" or unset xref_check_baseline'
            )
            raise ConfigError(msg) from None
        entries: dict[BaselineKey, int] = {}
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            # the target, last, may hold spaces
            parts = line.split(None, 2)
            if len(parts) != 3:
                msg = (
                    f'{path}:{lineno}: expected "docname role target" (three fields '
                    f"separated by spaces), got {raw.strip()!r}"
                )
                raise ConfigError(msg)
            entries.setdefault((parts[0], parts[1], parts[2]), lineno)
        return cls(path=path, entries=entries)


def key_of(finding: Finding) -> BaselineKey:
    return finding.docname, finding.role, finding.target


def format_baseline(findings: Iterable[Mapping[str, object]]) -> str:
    """Baseline lines for the findings of a JSON report."""
    keys = sorted({(str(f["docname"]), str(f["role"]), str(f["target"])) for f in findings})
    lines = ["# accepted cross-references: docname role target"]
    lines += [" ".join(key) for key in keys]
    return "\n".join(lines) + "\n"


def warn_finding(finding: Finding, *, location: Location, baseline: Baseline | None) -> bool:
    """Warn about one finding unless the baseline accepts it; True when warned.

    An unavailable inventory is summarised once per inventory at the end instead.
    """
    if baseline is not None and key_of(finding) in baseline.entries:
        return False
    if finding.cause is Subtype.INVENTORY_UNAVAILABLE:
        return False
    emit_warning(finding.cause, finding.message, location=location)
    return True


def summarise_unavailable(
    findings: Iterable[Finding], *, failed: Iterable[str], baseline: Baseline | None
) -> None:
    """One warning per inventory that did not load, counting the references into it.

    Said for every such inventory, even when no reference depends on it: that it
    did not load was said at the start, and this says what it cost.
    """
    by_inventory: dict[str, list[Finding]] = {name: [] for name in failed}
    for finding in findings:
        accepted = baseline is not None and key_of(finding) in baseline.entries
        if finding.cause is Subtype.INVENTORY_UNAVAILABLE and finding.inventory and not accepted:
            by_inventory.setdefault(finding.inventory, []).append(finding)
    for name, items in sorted(by_inventory.items()):
        count = len(items)
        if not count:
            emit_warning(
                Subtype.INVENTORY_UNAVAILABLE,
                "no reference of this build goes into inventory %r, which did not load",
                name,
            )
            continue
        where = [f"{f.file}:{f.line}" if f.line else f.file for f in items]
        shown = ", ".join(where[:5]) + (", ..." if len(where) > 5 else "")
        emit_warning(
            Subtype.INVENTORY_UNAVAILABLE,
            "%s into inventory %r %s neither linked nor checked because it did not load: %s",
            "1 reference" if count == 1 else f"{count} references",
            name,
            "was" if count == 1 else "were",
            shown,
        )


def merge_state(
    *,
    state_path: Path,
    written: Iterable[str],
    current: Iterable[Finding],
    all_docs: Iterable[str],
) -> list[Finding]:
    """Findings of this build for rewritten documents, the saved ones for the rest."""
    saved: dict[str, list[Finding]] = {}
    try:
        raw = json.loads(state_path.read_text(encoding="utf-8"))
        for docname, items in raw.items():
            saved[docname] = [Finding.from_json(item) for item in items]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        saved = {}  # no usable state: this build's findings are all there is
    for docname in written:
        saved[docname] = []
    for finding in current:
        saved.setdefault(finding.docname, []).append(finding)
    docs = set(all_docs)
    merged = {d: items for d, items in sorted(saved.items()) if d in docs}
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(
            json.dumps(
                {d: [f.to_json(baselined=False) for f in items] for d, items in merged.items()}
            ),
            encoding="utf-8",
        )
    except OSError as exc:
        LOGGER.info("xref_check: cannot save %s: %s", state_path, exc)
    return [f for items in merged.values() for f in items]


def write_report(path: Path, findings: Iterable[Finding], *, baseline: Baseline | None) -> None:
    keys = baseline.entries if baseline is not None else {}
    data = [
        f.to_json(baselined=key_of(f) in keys)
        for f in sorted(findings, key=lambda f: (f.file, f.line or 0, f.target))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def warn_stale(baseline: Baseline, findings: Iterable[Finding]) -> None:
    seen = {key_of(f) for f in findings}
    for key, lineno in sorted(baseline.entries.items(), key=lambda kv: kv[1]):
        if key not in seen:
            emit_warning(
                Subtype.STALE_BASELINE,
                "baseline entry %r no longer matches any reference; remove it",
                " ".join(key),
                location=f"{baseline.path}:{lineno}",
            )

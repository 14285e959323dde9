"""Configuration values: declared in ``setup()``, checked at ``config-inited``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config

Scope = Literal["external", "all"]
SnapshotMode = Literal["fallback", "only"]

SCOPES: Final = ("external", "all")
SNAPSHOT_MODES: Final = ("fallback", "only")

#: ``(name, default, rebuild, types, meaning)``; the meaning is what the docs show.
_Rebuild = Literal["", "env", "html"]

#: One declared value: name, default, rebuild, accepted types, meaning.
ConfigValue = tuple[str, Any, _Rebuild, frozenset[type], str]

CONFIG_VALUES: Final[tuple[ConfigValue, ...]] = (
    (
        "xref_check_scope",
        "external",
        "env",
        frozenset({str}),
        '"external": check references into a module or project an inventory covers, '
        'and :external: roles; "all": every reference that does not resolve.',
    ),
    (
        "xref_check_import",
        True,
        "env",
        frozenset({bool}),
        "Import targets from the installed package to detect inventory/version "
        "mismatches; only modules of the distribution an inventory documents.",
    ),
    (
        "xref_check_distributions",
        {},
        "env",
        frozenset({dict}),
        "intersphinx_mapping name -> installed distribution name, where they differ.",
    ),
    (
        "xref_check_baseline",
        None,
        "env",
        frozenset({str, type(None)}),
        "File (relative to the conf.py folder) of accepted references, one "
        '"docname role target" per line; they are not warned about.',
    ),
    (
        "xref_check_snapshot",
        None,
        "env",
        frozenset({str, type(None)}),
        "Folder (relative to the conf.py folder) written by "
        '"python -m sphinxext.xref_check snapshot"; checked against its lock file.',
    ),
    (
        "xref_check_snapshot_mode",
        "fallback",
        "env",
        frozenset({str}),
        '"fallback": try each URL first and use the snapshot when it cannot be '
        'reached; "only": use the snapshot and never the network.',
    ),
)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class XrefConfig:
    """The checked configuration, as plain data."""

    scope: Scope
    import_check: bool
    distributions: dict[str, str]
    baseline: Path | None
    snapshot: Path | None
    snapshot_mode: SnapshotMode

    @classmethod
    def from_config(cls, config: Config, confdir: Path) -> XrefConfig:
        baseline = config.xref_check_baseline
        snapshot = config.xref_check_snapshot
        return cls(
            scope=config.xref_check_scope,
            import_check=config.xref_check_import,
            distributions=dict(config.xref_check_distributions),
            baseline=confdir / baseline if baseline else None,
            snapshot=confdir / snapshot if snapshot else None,
            snapshot_mode=config.xref_check_snapshot_mode,
        )


def add_config_values(app: Sphinx) -> None:
    for name, default, rebuild, types, _meaning in CONFIG_VALUES:
        app.add_config_value(name, default, rebuild, types=types)


def validate_config(config: Config, conf_py: Path) -> list[tuple[str, str | None]]:
    """What is wrong with each bad value, and where (``conf.py:line``, or None
    if set with -D); each bad value is then set to its default."""
    defaults = {name: default for name, default, *_rest in CONFIG_VALUES}
    problems: list[tuple[str, str | None]] = []

    def check(ok: bool, name: str, allowed: str) -> None:
        if ok:
            return
        where, location = " (set with -D)", None
        if name not in config.overrides:
            where, location = "", f"{conf_py}:{_line_of(conf_py, name)}"
        problems.append((
            f"invalid {name} = {getattr(config, name)!r}{where}: expected {allowed}; "
            f"this build runs with the default, {defaults[name]!r}, and fails",
            location,
        ))
        setattr(config, name, defaults[name])

    check(config.xref_check_scope in SCOPES, "xref_check_scope", '"external" or "all"')
    check(
        config.xref_check_snapshot_mode in SNAPSHOT_MODES,
        "xref_check_snapshot_mode",
        '"fallback" or "only"',
    )
    check(isinstance(config.xref_check_import, bool), "xref_check_import", "True or False")
    dists = config.xref_check_distributions
    check(
        isinstance(dists, dict)
        and all(isinstance(k, str) and isinstance(v, str) and v for k, v in dists.items()),
        "xref_check_distributions",
        "a dict of intersphinx_mapping name -> distribution name (both strings)",
    )
    for name in ("xref_check_baseline", "xref_check_snapshot"):
        value = getattr(config, name)
        check(
            value is None or (isinstance(value, str) and bool(value)),
            name,
            "None or a path relative to the folder of conf.py",
        )
    return problems


def _line_of(conf_py: Path, name: str) -> int:
    """The line of ``conf.py`` that sets ``name`` (1 if none does)."""
    try:
        lines = conf_py.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 1
    return next((n for n, line in enumerate(lines, 1) if line.startswith(name)), 1)

"""``python -m sphinxext.xref_check``: snapshot the inventories, or write a baseline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sphinx.config import Config
from sphinx.errors import ConfigError
from sphinx.util.tags import Tags

from sphinxext.xref_check._report import REPORT_NAME, format_baseline
from sphinxext.xref_check._snapshot import LOCK_NAME, take_snapshot

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_FOLDER = "_inventories"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sphinxext.xref_check",
        description="Pin intersphinx inventories for offline builds, or accept the "
        "current cross-reference findings as a baseline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    snap = commands.add_parser(
        "snapshot",
        help="save every inventory of intersphinx_mapping with a lock file",
        description=f"Fetch every inventory of intersphinx_mapping into the snapshot "
        f"folder (-o FOLDER) and write FOLDER/{LOCK_NAME} (name, url, project, version, "
        f"sha256, fetched_at).",
    )
    snap.add_argument(
        "-c",
        "--confdir",
        default=".",
        type=Path,
        metavar="CONFDIR",
        help="folder of conf.py (default: .)",
    )
    snap.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FOLDER",
        help=f"snapshot folder (default: xref_check_snapshot from conf.py, else "
        f"CONFDIR/{DEFAULT_FOLDER})",
    )
    snap.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per download (default: 30)"
    )
    base = commands.add_parser(
        "baseline",
        help=f"print baseline lines accepting every finding of a {REPORT_NAME}",
    )
    base.add_argument("report", type=Path, help=f"the {REPORT_NAME} of a build")
    base.add_argument(
        "-o", "--output", type=Path, default=None, help="write here instead of stdout"
    )
    return parser


def _normalise(raw: object) -> dict[str, tuple[str, tuple[str | None, ...]]]:
    if not isinstance(raw, dict):
        msg = "intersphinx_mapping must be a dict"
        raise ConfigError(msg)
    mapping = {}
    for name, value in raw.items():
        try:
            uri, locations = value
        except (TypeError, ValueError):
            msg = f"intersphinx_mapping[{name!r}] must be a (URI, inventory) pair"
            raise ConfigError(msg) from None
        if not isinstance(locations, (tuple, list)):
            locations = (locations,)
        mapping[str(name)] = (str(uri), tuple(locations))
    return mapping


def snapshot(confdir: Path, output: Path | None, timeout: float) -> int:
    confdir = confdir.resolve()
    try:
        config = Config.read(confdir, overrides={}, tags=Tags())
        # declared here as the extensions would, so that conf.py's values are read
        config.add("intersphinx_mapping", {}, "env", frozenset({dict}))
        config.add("xref_check_snapshot", None, "env", frozenset({str, type(None)}))
        mapping = _normalise(config.intersphinx_mapping)
        configured = config.xref_check_snapshot
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if output is None:
        output = confdir / (configured or DEFAULT_FOLDER)
    if not mapping:
        print(f"error: {confdir / 'conf.py'} has no intersphinx_mapping", file=sys.stderr)
        return 2
    entries, errors = take_snapshot(mapping=mapping, folder=output, base=confdir, timeout=timeout)
    for entry in entries:
        print(f"{entry.name}: {entry.project} {entry.version} from {entry.url}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"wrote {output / LOCK_NAME}")
    return 1 if errors else 0


def baseline(report: Path, output: Path | None) -> int:
    try:
        findings = json.loads(report.read_text(encoding="utf-8"))
        text = format_baseline(findings)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {report} is not a readable {REPORT_NAME}: {exc}", file=sys.stderr)
        return 2
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "snapshot":
        return snapshot(args.confdir, args.output, args.timeout)
    return baseline(args.report, args.output)

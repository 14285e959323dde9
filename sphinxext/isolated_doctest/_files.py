"""Machine-readable results beside output.txt: ``output.json`` and ``junit.xml``."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

if TYPE_CHECKING:
    from pathlib import Path

    from sphinxext.isolated_doctest._report import Counts, GroupOutcome


def write_json(path: Path, outcomes: list[GroupOutcome], counts: Counts, elapsed: float) -> None:
    data = {
        "summary": {
            "tests": counts.tries["test"],
            "failures": counts.failures["test"],
            "setup_failures": counts.failures["setup"],
            "cleanup_failures": counts.failures["cleanup"],
            "groups": len(outcomes),
            "cached": sum(o.cached for o in outcomes),
            "seconds": round(elapsed, 3),
        },
        "groups": [
            {
                "document": o.docname,
                "file": o.filename,
                "line": o.line,
                "group": o.group,
                "status": o.status,
                "seconds": round(o.duration, 4),
                "cached": o.cached,
                "tests": o.tries,
                "failures": o.failures,
                "setup_failures": o.setup_failures,
                "cleanup_failures": o.cleanup_failures,
                "message": o.message,
                "report": o.text,
            }
            for o in outcomes
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_junit(path: Path, outcomes: list[GroupOutcome], elapsed: float) -> None:
    """One test case per group; failures carry their report, faults are errors."""
    suite = ET.Element(
        "testsuite",
        name="doctest",
        tests=str(len(outcomes)),
        failures=str(sum(o.status == "failed" for o in outcomes)),
        errors=str(sum(o.status == "error" for o in outcomes)),
        time=f"{elapsed:.3f}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    for o in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=o.docname.replace("/", "."),
            name=o.group,
            file=o.filename,
            time=f"{o.duration:.4f}",
        )
        if o.line is not None:
            case.set("line", str(o.line))
        if o.status in {"failed", "error"}:
            detail = ET.SubElement(
                case, "failure" if o.status == "failed" else "error", message=o.headline
            )
            detail.text = o.text
        if o.cached:
            ET.SubElement(case, "system-out").text = "result from the cache"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")

"""Precision of sphinxext.xref_check on a real doc set: Flask 3.1's documentation.

Prepares, on a fresh machine, everything it needs, offline but for the package
registries: Flask's sdist from PyPI (its ``docs/``), a virtualenv in
``bench/_corpus/real`` with Flask, its theme and extensions and this project, and
Debian's inventories of Python, Werkzeug, Click, Jinja and ItsDangerous
(``sh .ci/inventories.sh flask``). It builds the docs with ``-n`` and
``sphinxext.xref_check``, reads ``xref_check.json`` and compares each finding
with the hand classification in ``bench/xref_verdicts.tsv`` (role, target,
cause: whether the warning is a real problem, whether its cause is right,
whether its top suggestion is the right fix). A finding that file does not
classify is printed and fails the run, as does anything it needs that is
unavailable.

Targets: >= 95 % of warnings real with the right cause; the top suggestion right
in >= 80 % of not_found and wrong_role warnings.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "_corpus" / "real"
VERDICTS = ROOT / "bench" / "xref_verdicts.tsv"
#: What the classification was made against; other versions warn differently.
PINS = [
    "flask==3.1.3",
    "werkzeug==3.1.9",
    "itsdangerous==2.2.0",
    "jinja2==3.1.6",
    "click==8.5.1",
    "pallets-sphinx-themes==2.5.0",
    "sphinxcontrib-log-cabinet==1.0.1",
    "sphinx-tabs==3.5.0",
]
INVENTORIES = {
    "python": ("https://docs.python.org/3/", "/usr/share/doc/python3.11/html/objects.inv"),
    "werkzeug": (
        "https://werkzeug.palletsprojects.com/",
        "/usr/share/doc/python-werkzeug-doc/html/objects.inv",
    ),
    "click": (
        "https://click.palletsprojects.com/",
        "/usr/share/doc/python-click-doc/html/objects.inv",
    ),
    "jinja": (
        "https://jinja.palletsprojects.com/",
        "/usr/share/doc/python-jinja2-doc/html/objects.inv",
    ),
    "itsdangerous": (
        "https://itsdangerous.palletsprojects.com/",
        "/usr/share/doc/python-itsdangerous-doc/html/objects.inv",
    ),
}
OVERRIDES = """

# -- added by bench_xref_real.py: offline, Debian's inventories, the check ---------
intersphinx_mapping = {mapping!r}
extensions.append("sphinxext.xref_check")
"""


class Unavailable(Exception):
    """Something the benchmark needs cannot be had here; the message says what."""


def _run(*args: str | Path, what: str) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Unavailable(f"{what} failed: {' / '.join(tail)}")


def prepare() -> tuple[Path, Path]:
    """The virtualenv's python and the prepared docs folder."""
    subprocess.run(["sh", str(ROOT / ".ci" / "inventories.sh"), "flask"], check=False)
    missing = [path for _uri, path in INVENTORIES.values() if not Path(path).is_file()]
    if missing:
        raise Unavailable(f"Debian's inventories are not installed: {', '.join(missing)}")
    CORPUS.mkdir(parents=True, exist_ok=True)
    python = CORPUS / "venv" / "bin" / "python"
    stamp = CORPUS / "venv" / ".installed"
    if not stamp.is_file():
        _run(sys.executable, "-m", "venv", CORPUS / "venv", what="creating the virtualenv")
        import sphinx

        _run(
            python, "-m", "pip", "install", "-q", "-e", ROOT, f"sphinx=={sphinx.__version__}",
            *PINS, what="pip install of Flask and its docs' extensions",
        )
        stamp.touch()
    sdist = CORPUS / "flask-3.1.3.tar.gz"
    if not sdist.is_file():
        _run(
            python, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
            "-d", CORPUS, "flask==3.1.3", what="pip download of Flask's sdist",
        )
    source = CORPUS / "flask-3.1.3"
    if not source.is_dir():
        with tarfile.open(sdist) as archive:
            archive.extractall(CORPUS, filter="data")
        conf = source / "docs" / "conf.py"
        conf.write_text(conf.read_text() + OVERRIDES.format(mapping=INVENTORIES))
    return python, source / "docs"


def classify(findings: list[dict[str, object]]) -> int:
    verdicts = {}
    with VERDICTS.open(encoding="utf-8") as stream:
        rows = (line for line in stream if not line.startswith("#"))
        for row in csv.DictReader(rows, delimiter="\t"):
            verdicts[row["role"], row["target"], row["cause"]] = row
    total = real = right_cause = 0
    fixable = fix_right = 0
    unknown = []
    for finding in findings:
        key = (str(finding["role"]), str(finding["target"]), str(finding["cause"]))
        verdict = verdicts.get(key)
        if verdict is None:
            unknown.append(key)
            continue
        total += 1
        real += verdict["real"] == "yes"
        right_cause += verdict["real"] == "yes" and verdict["cause_right"] == "yes"
        if key[2] in {"not_found", "wrong_role"}:
            fixable += 1
            fix_right += verdict["top_suggestion_right"] == "yes"
    precision = right_cause / total if total else 0.0
    suggestion = fix_right / fixable if fixable else 0.0
    ok = precision >= 0.95 and suggestion >= 0.80 and not unknown
    line = "| {:44} | {:>7} | {:>7} |"
    print(line.format("Flask 3.1.3 docs, -n, Debian inventories", "value", "target"))
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 9}|")
    print(line.format("warnings (xref_check.json)", total, ""))
    print(line.format("true (a real problem)", real, ""))
    print(line.format("false", total - real, ""))
    print(line.format("true, with the right cause", right_cause, ""))
    print(line.format("precision: true with the right cause", f"{precision:.1%}", ">= 95%"))
    print(line.format("not_found / wrong_role warnings", fixable, ""))
    print(line.format("  top suggestion the right fix", fix_right, ""))
    print(line.format("suggestion precision", f"{suggestion:.1%}", ">= 80%"))
    for key in unknown:
        print(f"not classified in {VERDICTS.name}: {' '.join(key)}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    try:
        python, docs = prepare()
    except Unavailable as exc:
        print(f"UNAVAILABLE: {exc}; the precision on a real doc set was not measured")
        return 1
    out = CORPUS / "out"
    done = subprocess.run(
        [python, "-m", "sphinx", "-E", "-q", "-n", "-b", "html", docs, out],
        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    report = out / "xref_check.json"
    if not report.is_file():
        print(f"FAIL: the build wrote no {report}: {done.stderr.strip()[-500:]}")
        return 1
    sphinx_warnings = sum("WARNING" in line for line in done.stderr.splitlines())
    print(f"sphinx-build -n: {sphinx_warnings} warning lines in all")
    return classify(json.loads(report.read_text(encoding="utf-8")))


if __name__ == "__main__":
    sys.exit(main())

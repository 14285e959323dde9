"""Benchmark on real documentation: CPython's Doc pages with tests.

Downloads the source of CPython 3.13.5 that Debian ships (pinned by its
sha256), keeps the pages of its Doc/ that hold tests (``>>>`` blocks or test
directives; the other pages are excluded in conf.py, the rest of the tree is
as released), and builds them with ``sphinx-build -E -b doctest``: CPython's
own conf.py with ``sphinx.ext.doctest`` against the same with
``sphinxext.isolated_doctest``, alternately, ROUNDS times (BENCH_CPYTHON_ROUNDS,
default 3). Target: at par, the isolated build at most 1.05 times the
reference's time.

CPython 3.13's Doc needs Sphinx 8.2 and docutils < 0.22, so the builds run in a
virtualenv of their own under bench/_corpus/cpython/, with Python 3.13 where
pyenv has one (the Doc's examples are 3.13's), and this checkout installed in
it, editable.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

from bench_doctest import Sample, median, peak, run_command

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / "bench" / "_corpus" / "cpython"
ROUNDS = int(os.environ.get("BENCH_CPYTHON_ROUNDS", "3"))
TARGET = 1.05

SOURCE = "Python-3.13.5"
TARBALL = "python3.13_3.13.5.orig.tar.xz"
URL = f"http://deb.debian.org/debian/pool/main/p/python3.13/{TARBALL}"
SHA256 = "93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640"
#: What Doc/ includes from outside it, besides Doc/ itself.
MEMBERS = (
    "Doc/",
    "Include/patchlevel.h",
    "Parser/Python.asdl",
    "Lib/test/exception_hierarchy.txt",
    "Grammar/python.gram",
)
#: A page holds tests if it has a doctest block or a test directive.
HAS_TESTS = re.compile(
    r"^\s*(>>>|\.\. (doctest|testcode|testsetup|testcleanup|testoutput)::)", re.MULTILINE
)
#: Pages that must stay whatever they hold: the root document.
KEEP = {"contents.rst"}


def download() -> Path:
    tarball = HOME / TARBALL
    if tarball.exists() and _sha256(tarball) == SHA256:
        return tarball
    HOME.mkdir(parents=True, exist_ok=True)
    print(f"downloading {URL}", flush=True)
    partial = tarball.with_suffix(".part")
    with urllib.request.urlopen(URL, timeout=120) as response, partial.open("wb") as f:
        shutil.copyfileobj(response, f)
    if _sha256(partial) != SHA256:
        raise SystemExit(f"{URL}: not the pinned file (sha256 differs); not used")
    partial.replace(tarball)
    return tarball


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def extract(tarball: Path) -> Path:
    tree = HOME / SOURCE
    if (tree / "Doc" / "conf.py").exists():
        return tree
    with tarfile.open(tarball) as archive:
        wanted = [
            m for m in archive.getmembers()
            if any(m.name.removeprefix(f"{SOURCE}/").startswith(p) for p in MEMBERS)
        ]
        archive.extractall(HOME, members=wanted, filter="data")
    return tree


def interpreter() -> tuple[str, str]:
    """Python 3.13 from pyenv if there is one, else this one; and why."""
    found = sorted((Path.home() / ".pyenv" / "versions").glob("3.13.*/bin/python3"))
    if found:
        return str(found[-1]), "pyenv's 3.13, the Doc's own version"
    return sys.executable, "no Python 3.13 under pyenv: examples of 3.13 features will fail"


def virtualenv(doc: Path, python: str) -> Path:
    venv = HOME / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv} with {python}", flush=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "sphinx~=8.2.0", "docutils<0.22",
             "-c", str(doc / "constraints.txt")],
            check=True,
        )
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True
    )
    return py


def variant(tree: Path, name: str, extension: str) -> tuple[Path, int]:
    """A copy of Doc/ whose conf.py uses ``extension`` and keeps the pages with
    tests; and how many pages it keeps."""
    doc = HOME / name
    shutil.rmtree(doc, ignore_errors=True)
    shutil.copytree(tree / "Doc", doc)
    # Beside the copy, as beside Doc/: what its includes reach outside it.
    for member in MEMBERS[1:]:
        target = HOME / member
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree / member, target)
    skip = []
    kept = 0
    for page in sorted(doc.rglob("*.rst")):
        relative = page.relative_to(doc).as_posix()
        if relative.startswith(("includes/", "tools/")):
            continue
        if relative in KEEP or HAS_TESTS.search(page.read_text("utf-8", errors="replace")):
            kept += 1
        else:
            skip.append(relative)
    conf = doc / "conf.py"
    text = conf.read_text(encoding="utf-8")
    if "'sphinx.ext.doctest'," not in text:
        raise SystemExit(f"{conf}: does not list 'sphinx.ext.doctest' as expected")
    text = text.replace("'sphinx.ext.doctest',", f"{extension!r},")
    conf.write_text(f"{text}\nexclude_patterns += {skip!r}\n", encoding="utf-8")
    return doc, kept


def summary(out: Path) -> str:
    """``N tests, F failures`` from output.txt's summary."""
    text = (out / "output.txt").read_text(encoding="utf-8")
    tests = re.search(r"^\s*(\d+) tests?$", text, re.MULTILINE)
    failures = re.findall(r"^\s*(\d+) failures? in", text, re.MULTILINE)
    if tests is None:
        return "no summary"
    return f"{tests.group(1)} tests, {sum(map(int, failures))} failures"


def main() -> int:
    tree = extract(download())
    python, why = interpreter()
    py = virtualenv(tree / "Doc", python)
    reference, pages = variant(tree, "Doc-reference", "sphinx.ext.doctest")
    isolated, _ = variant(tree, "Doc-isolated", "sphinxext.isolated_doctest")
    print(f"CPython {SOURCE.partition('-')[2]} Doc, pages with tests; {why}; rounds: {ROUNDS}")

    def build(doc: Path, out: str) -> Sample:
        # Their failures (a few examples need a build of CPython itself) end
        # the build with status 1; only a crash (2) is an error here.
        argv = [str(py), "-m", "sphinx", "-b", "doctest", "-E", "-q", str(doc), str(HOME / out)]
        return run_command(argv, allowed=(0, 1))

    ref: list[Sample] = []
    ours: list[Sample] = []
    for _ in range(ROUNDS):
        ref.append(build(reference, "out-reference"))
        ours.append(build(isolated, "out-isolated"))
    ratio = median(ours) / median(ref)
    met = ratio <= TARGET
    print(f"{pages} pages kept, each with tests (and the root document)")
    print(f"sphinx.ext.doctest:         {median(ref):6.2f} s, peak {peak(ref)} MiB; "
          f"{summary(HOME / 'out-reference')}")
    print(f"sphinxext.isolated_doctest: {median(ours):6.2f} s, peak {peak(ours)} MiB; "
          f"{summary(HOME / 'out-isolated')}")
    print(f"ratio {ratio:.3f} (isolated / reference), target <= {TARGET}: "
          f"{'PASS' if met else 'FAIL'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark sphinxext.xref_check: suggestion speed, and build-time overhead.

1. suggestions for 200 bad references against Python's inventory (~15,600 entries),
   index build included: target < 1 s;
2. build time of a 2,000-reference page set, intersphinx alone vs with xref_check,
   medians of alternating runs: target ratio <= 1.10.

Run from the repository root: ``python bench/bench_xref.py``.
"""

from __future__ import annotations

import random
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

from sphinx.util.inventory import InventoryFile

from sphinxext.xref_check._index import TargetIndex

CORPUS = Path("bench/_corpus/xref")
DEBIAN_PYTHON = Path("/usr/share/doc/python3.11/html/objects.inv")
RUNS = 3
PAGES = 20
REFS_PER_PAGE = 100
BAD_REFS = 20  # 1 %: the index is built during the measured builds too


def python_inventory() -> tuple[bytes, str]:
    if DEBIAN_PYTHON.is_file():
        return DEBIAN_PYTHON.read_bytes(), str(DEBIAN_PYTHON)
    rng = random.Random(0)
    words = [
        "".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(3, 10)))
        for _ in range(3000)
    ]
    lines = []
    for i in range(15600):
        mod = f"mod{i % 200}"
        name = f"{mod}.{words[i % 3000]}{i}"
        lines.append(f"{name} py:function 1 lib.html#$ -\n")
    header = (
        b"# Sphinx inventory version 2\n# Project: Python\n# Version: 3.11\n"
        b"# The remainder of this file is compressed using zlib.\n"
    )
    return header + zlib.compress("".join(lines).encode()), "synthetic"


def typo(rng: random.Random, name: str) -> str:
    head, _, last = name.rpartition(".")
    i = rng.randrange(len(last))
    last = last[:i] + last[i + 1 :] if len(last) > 3 and rng.random() < 0.5 else last + "x"
    return f"{head}.{last}" if head else last


def bench_suggestions(data: bytes) -> float:
    inventory = InventoryFile.loads(data, uri="https://docs.python.org/3/").data
    names = [n for objtype, items in inventory.items() if objtype.startswith("py:") for n in items]
    rng = random.Random(1)
    queries = [typo(rng, n) for n in rng.sample(names, 200)]
    start = time.perf_counter()
    index = TargetIndex.from_inventories(
        {"python": {objtype: list(items) for objtype, items in inventory.items()}}
    )
    built = time.perf_counter()
    for query in queries:
        index.suggest(query, domains=("py", "std"))
    done = time.perf_counter()
    entries = sum(len(items) for items in inventory.values())
    print(
        f"inventory entries: {entries}; index build {built - start:.3f} s, "
        f"200 suggestion queries {done - built:.3f} s"
    )
    return done - start


def write_corpus(data: bytes) -> Path:
    inventory = InventoryFile.loads(data, uri="https://docs.python.org/3/").data
    rng = random.Random(2)
    roles = {"py:function": "func", "py:class": "class", "py:method": "meth"}
    pool = [(roles[t], n) for t, items in inventory.items() if t in roles for n in items]
    good = rng.sample(pool, PAGES * REFS_PER_PAGE - BAD_REFS)
    bad = [(role, typo(rng, name)) for role, name in rng.sample(pool, BAD_REFS)]
    refs = good + bad
    rng.shuffle(refs)
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    src = CORPUS / "src"
    src.mkdir(parents=True)
    (src / "objects.inv").write_bytes(data)
    for page in range(PAGES):
        chunk = refs[page * REFS_PER_PAGE : (page + 1) * REFS_PER_PAGE]
        body = "\n".join(f"* :{role}:`{name}`" for role, name in chunk)
        (src / f"page{page}.rst").write_text(f"Page {page}\n=========\n\n{body}\n")
    toc = "\n".join(f"   page{page}" for page in range(PAGES))
    (src / "index.rst").write_text(f"Bench\n=====\n\n.. toctree::\n\n{toc}\n")
    (src / "conf.py").write_text(
        "import os\n"
        "extensions = os.environ['BENCH_EXTENSIONS'].split(',')\n"
        "intersphinx_mapping = {'python': ('https://docs.python.org/3/', 'objects.inv')}\n"
    )
    return src


def build(src: Path, extension: str) -> float:
    out = CORPUS / f"out-{extension.rsplit('.', 1)[-1]}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**__import__("os").environ, "BENCH_EXTENSIONS": extension}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-E", "-b", "html", str(src), str(out)],
        check=True,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> int:
    data, origin = python_inventory()
    print(f"Python inventory: {origin}")
    suggest_time = bench_suggestions(data)
    src = write_corpus(data)
    plain: list[float] = []
    checked: list[float] = []
    for _ in range(RUNS):
        plain.append(build(src, "sphinx.ext.intersphinx"))
        checked.append(build(src, "sphinxext.xref_check"))
    ratio = statistics.median(checked) / statistics.median(plain)
    ok_suggest = suggest_time < 1.0
    ok_build = ratio <= 1.10
    print()
    print("| measure                                   | value   | target  | result |")
    print("|-------------------------------------------|---------|---------|--------|")
    print(
        f"| 200 suggestions vs Python inventory (s)   | {suggest_time:7.3f} | < 1.000 | "
        f"{'PASS' if ok_suggest else 'FAIL':6} |"
    )
    print(
        f"| build, intersphinx alone (median s)       | {statistics.median(plain):7.2f} |"
        f"         |        |"
    )
    print(
        f"| build, with xref_check (median s)         | {statistics.median(checked):7.2f} |"
        f"         |        |"
    )
    print(
        f"| ratio, {PAGES * REFS_PER_PAGE} references, {RUNS} alternating runs  | "
        f"{ratio:7.3f} | <= 1.10 | {'PASS' if ok_build else 'FAIL':6} |"
    )
    return 0 if ok_suggest and ok_build else 1


if __name__ == "__main__":
    sys.exit(main())

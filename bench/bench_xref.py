"""Benchmark sphinxext.xref_check: suggestion speed, and build-time overhead.

1. suggestions for 200 bad references against Python's inventory (~15,600 entries),
   index build included: target < 1 s (median of 3, each with a fresh index);
2. build time of a 2,000-reference page set (1 % bad: typos and wrong roles),
   intersphinx alone vs with xref_check, one unmeasured warm-up build each, then
   ROUNDS rounds that alternate the order (AB, BA, ...) so that drift in the
   machine's load hits both alike; the ratio of the medians: target <= 1.10.

Run from the repository root: ``python bench/bench_xref.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
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
ROUNDS = 7
PAGES = 20
REFS_PER_PAGE = 100
BAD_REFS = 20  # 1 %: the index is built during the measured builds too
WRONG_ROLE = 5  # of the bad references, these name a real target with the wrong role


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
    totals = []
    for _ in range(3):
        start = time.perf_counter()
        # the inventory as intersphinx holds it, which is what the extension indexes
        index = TargetIndex.from_inventories({"python": inventory})
        index.suggest(queries[0], domains=("py", "std"))
        first = time.perf_counter()
        for query in queries[1:]:
            index.suggest(query, domains=("py", "std"))
        done = time.perf_counter()
        totals.append(done - start)
        entries = sum(len(items) for items in inventory.values())
        print(
            f"inventory entries: {entries}; first query (builds the index) "
            f"{first - start:.3f} s, 199 more {done - first:.3f} s"
        )
    return statistics.median(totals)


def write_corpus(data: bytes) -> Path:
    inventory = InventoryFile.loads(data, uri="https://docs.python.org/3/").data
    rng = random.Random(2)
    roles = {"py:function": "func", "py:class": "class", "py:method": "meth"}
    pool = [(roles[t], n) for t, items in inventory.items() if t in roles for n in items]
    good = rng.sample(pool, PAGES * REFS_PER_PAGE - BAD_REFS)
    bad = [(role, typo(rng, name)) for role, name in rng.sample(pool, BAD_REFS - WRONG_ROLE)]
    classes = [name for role, name in pool if role == "class"]
    bad += [("func", name) for name in rng.sample(classes, WRONG_ROLE)]
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


def build(src: Path, extension: str, *, warm_up: bool = False) -> float:
    """Build *src* in a fresh process; the seconds it took.

    A warm-up build writes the bytecode of every module the build imports even where
    PYTHONDONTWRITEBYTECODE is set, so that neither side recompiles edited sources.
    """
    out = CORPUS / f"out-{extension.rsplit('.', 1)[-1]}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "BENCH_EXTENSIONS": extension}
    if warm_up:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-E", "-b", "html", str(src), str(out)],
        check=True,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _row(measure: str, value: str, target: str = "", result: str = "") -> str:
    return f"| {measure:45} | {value:7} | {target:7} | {result:6} |"


def main() -> int:
    data, origin = python_inventory()
    print(f"Python inventory: {origin}")
    suggest_time = bench_suggestions(data)
    src = write_corpus(data)
    names = ("sphinx.ext.intersphinx", "sphinxext.xref_check")
    wall: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        build(src, name, warm_up=True)  # bytecode and file caches
    for round_ in range(ROUNDS):
        for name in names if round_ % 2 == 0 else reversed(names):
            wall[name].append(build(src, name))
    plain, checked = (statistics.median(wall[name]) for name in names)
    ratio = checked / plain
    ok_suggest = suggest_time < 1.0
    ok_build = ratio <= 1.10
    print()
    for name in names:
        print(f"{name:24} " + " ".join(f"{t:.2f}" for t in wall[name]))
    print()
    print(_row("measure", "value", "target", "result"))
    print(f"|{'-' * 47}|{'-' * 9}|{'-' * 9}|{'-' * 8}|")
    verdict = {True: "PASS", False: "FAIL"}
    suggest = f"{suggest_time:7.3f}"
    print(_row("200 suggestions vs Python inventory (s)", suggest, "< 1.000", verdict[ok_suggest]))
    print(_row("build, intersphinx alone (median wall s)", f"{plain:7.2f}"))
    print(_row("build, with xref_check (median wall s)", f"{checked:7.2f}"))
    label = f"ratio, {PAGES * REFS_PER_PAGE} refs, {ROUNDS} alternating rounds"
    print(_row(label, f"{ratio:7.3f}", "<= 1.10", verdict[ok_build]))
    # not a second target: how much the load on the machine moved the ratio
    paired = statistics.median(b / a for a, b in zip(*wall.values(), strict=True))
    print(_row("median of each round's ratio", f"{paired:7.3f}"))
    return 0 if ok_suggest and ok_build else 1


if __name__ == "__main__":
    sys.exit(main())

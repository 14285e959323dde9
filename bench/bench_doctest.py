"""Benchmark the isolated doctest builder side by side with what it replaces.

Generates its corpora under bench/_corpus/doctest/, then runs each pair of
commands alternately (ABAB...), ROUNDS times, and prints medians, ratios and the
peak resident memory of the measured process:

(a) 300 plain groups on 30 pages: ``sphinx-build -E -b doctest`` with
    sphinx.ext.doctest vs with sphinxext.isolated_doctest: a printed figure of
    what a process per group costs, not a gate (bench_cpython judges the speed
    on real pages);
(b) 100 groups that patch with gevent, spawn a greenlet and create and close a
    MongoClient: a fresh interpreter per group (``python -m doctest`` on a file
    per group, two at a time) vs ours (target: >= 4 times faster);
(c) 20 groups that each sleep 0.5 s: ``isolated_doctest_jobs = 1`` vs "auto"
    (target: >= 1.8 times faster);
(d) a re-run of (b) with nothing changed: cache on vs off (target: <= 0.3).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "_corpus" / "doctest"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PY = sys.executable

GEVENT_GROUP = """\
.. doctest:: g{n}

   >>> import gevent
   >>> from pymongo import MongoClient
   >>> client = MongoClient()
   >>> gevent.spawn(lambda: {n} * 2).get()
   {double}
   >>> client.close()
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def make_project(name: str, pages: dict[str, str], conf: str) -> Path:
    folder = CORPUS / name
    shutil.rmtree(folder, ignore_errors=True)
    toctree = "\n".join(f"   {page}" for page in pages)
    write(folder / "index.rst", f"Corpus\n======\n\n.. toctree::\n\n{toctree}\n")
    for page, body in pages.items():
        write(folder / f"{page}.rst", f"{page}\n{'=' * len(page)}\n\n{body}")
    write(folder / "conf.py", conf)
    return folder


def plain_pages() -> dict[str, str]:
    pages = {}
    for p in range(30):
        groups = []
        for g in range(10):
            n = p * 10 + g
            groups.append(
                f".. testsetup:: g{g}\n\n   base = {n}\n\n"
                f".. doctest:: g{g}\n\n   >>> base + 1\n   {n + 1}\n"
                f"   >>> sorted({{base, 2, 1}})[-1] >= 2\n   True\n"
            )
        pages[f"page{p:02}"] = "\n".join(groups)
    return pages


def gevent_pages() -> dict[str, str]:
    pages = {}
    for p in range(10):
        body = "\n".join(
            GEVENT_GROUP.format(n=p * 10 + g, double=(p * 10 + g) * 2) for g in range(10)
        )
        pages[f"page{p:02}"] = f":doctest-preamble: gevent\n\n{body}"
    return pages


def sleep_pages() -> dict[str, str]:
    body = "\n".join(
        f".. doctest:: s{n}\n\n   >>> import time; time.sleep(0.5)\n" for n in range(20)
    )
    return {"sleepy": body}


def conf(extension: str, **values: object) -> str:
    lines = [f"extensions = [{extension!r}]"]
    lines += [f"{key} = {value!r}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def fresh_interpreter_files() -> Path:
    """One doctest file per group of (b), as ``python -m doctest`` reads them."""
    folder = CORPUS / "b-files"
    shutil.rmtree(folder, ignore_errors=True)
    for n in range(100):
        write(
            folder / f"group{n:03}.txt",
            ">>> from gevent import monkey; _ = monkey.patch_all()\n"
            ">>> import gevent\n>>> from pymongo import MongoClient\n"
            ">>> client = MongoClient()\n"
            f">>> gevent.spawn(lambda: {n} * 2).get()\n{n * 2}\n>>> client.close()\n",
        )
    return folder


# -- measuring ---------------------------------------------------------------


class Sample(NamedTuple):
    seconds: float
    rss_kib: int  # the peak of the measured process itself
    cpu: float  # user + system seconds, the process's and its children's


def run_command(argv: list[str], cwd: Path = ROOT, *, env: dict[str, str] | None = None,
                allowed: tuple[int, ...] = (0,)) -> Sample:
    """Seconds, peak RSS and CPU time of one command, which must end with a
    status in ``allowed``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in allowed:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{stderr[-2000:]}")
    # wait4 counts the children that the command (and they) waited for.
    return Sample(elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)


def sphinx(project: Path, out: str, *extra: str, fresh: bool = True) -> list[str]:
    argv = [PY, "-m", "sphinx", "-b", "doctest", "-q", str(project), str(CORPUS / out)]
    if fresh:
        argv.insert(5, "-E")
    return argv + list(extra)


def fresh_interpreters(folder: Path) -> Sample:
    files = sorted(folder.glob("*.txt"))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda f: run_command([PY, "-m", "doctest", str(f)]), files))
    return Sample(time.perf_counter() - start, max(r.rss_kib for r in results),
                  sum(r.cpu for r in results))


def warm_up(*argvs: list[str]) -> None:
    """One unmeasured run each, allowed to write bytecode (as an installed
    package has it), so that no measured run compiles modules."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv in argvs:
        run_command(argv, env=env)


def alternate(
    a: Callable[[], Sample], b: Callable[[], Sample], rounds: int = ROUNDS
) -> tuple[list[Sample], list[Sample]]:
    first: list[Sample] = []
    second: list[Sample] = []
    for _ in range(rounds):
        first.append(a())
        second.append(b())
    return first, second


def median(samples: list[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def peak(samples: list[Sample]) -> int:
    return max(s.rss_kib for s in samples) // 1024


def median_cpu(samples: list[Sample]) -> float:
    return statistics.median(s.cpu for s in samples)


def main() -> int:
    python = sys.version.split()[0]
    print(f"rounds: {ROUNDS} (alternating); CPUs: {os.cpu_count()}; Python {python}")
    #: case, A's name, A's samples, B's name, B's samples, ratio, target, met
    #: (None: no target).
    rows: list[tuple[str, str, list[Sample], str, list[Sample], float, str, bool | None]] = []

    plain = plain_pages()
    ref = make_project("a-reference", plain, conf("sphinx.ext.doctest"))
    ours = make_project("a-isolated", plain, conf("sphinxext.isolated_doctest"))
    warm_up(sphinx(ref, "a-reference-out"), sphinx(ours, "a-isolated-out"))
    a_ref, a_ours, a_doc = [], [], []
    for _ in range(ROUNDS):
        a_ref.append(run_command(sphinx(ref, "a-reference-out")))
        a_ours.append(run_command(sphinx(ours, "a-isolated-out")))
        a_doc.append(run_command(sphinx(ours, "a-isolated-out", "-D",
                                        "isolated_doctest_isolation=document")))
    # A printed figure, not a gate: 300 groups that do nothing measure what a
    # process per group costs, which sits below the fork floor of CPython 3.11
    # (docs/guide/performance.rst); real pages are judged by bench_cpython.
    rows.append(("(a) 300 plain groups, sphinx-build -E", "sphinx.ext.doctest", a_ref,
                 "isolated", a_ours, median(a_ours) / median(a_ref), "(no target)", None))
    rows.append(("(a') the same, one child per page", "sphinx.ext.doctest", a_ref,
                 "isolation=document", a_doc, median(a_doc) / median(a_ref), "(no target)",
                 None))

    gevent = make_project("b-isolated", gevent_pages(), conf("sphinxext.isolated_doctest"))
    files = fresh_interpreter_files()
    b_fresh, b_ours = alternate(
        lambda: fresh_interpreters(files),
        lambda: run_command(sphinx(gevent, "b-isolated-out")),
    )
    speedup = median(b_fresh) / median(b_ours)
    rows.append(("(b) 100 gevent+pymongo groups", "fresh interpreter x2", b_fresh,
                 "isolated", b_ours, speedup, ">= 4x faster", speedup >= 4))

    sleepy = make_project("c-isolated", sleep_pages(), conf("sphinxext.isolated_doctest"))
    c_serial, c_parallel = alternate(
        lambda: run_command(sphinx(sleepy, "c-out", "-D", "isolated_doctest_jobs=1")),
        lambda: run_command(sphinx(sleepy, "c-out", "-D", "isolated_doctest_jobs=auto")),
    )
    speedup = median(c_serial) / median(c_parallel)
    rows.append(("(c) 20 groups sleeping 0.5 s", "jobs = 1", c_serial,
                 "jobs = auto", c_parallel, speedup, ">= 1.8x faster", speedup >= 1.8))

    # (d): warm the environment and the cache once, then re-run with nothing changed.
    run_command(sphinx(gevent, "d-out", fresh=True))
    d_off, d_on = alternate(
        lambda: run_command(sphinx(gevent, "d-out", "-D", "isolated_doctest_cache=0",
                                   fresh=False)),
        lambda: run_command(sphinx(gevent, "d-out", fresh=False)),
    )
    ratio = median(d_on) / median(d_off)
    rows.append(("(d) re-run of (b), nothing changed", "cache off", d_off,
                 "cache on", d_on, ratio, "<= 0.3", ratio <= 0.3))

    header = ("case", "A", "median s", "peak MiB", "B", "median s", "peak MiB", "ratio",
              "target", "")
    table = [header]
    for case, a_name, a, b_name, b, ratio, target, ok in rows:
        table.append((case, a_name, f"{median(a):.2f}", str(peak(a)), b_name, f"{median(b):.2f}",
                      str(peak(b)), f"{ratio:.2f}", target,
                      "" if ok is None else "PASS" if ok else "FAIL"))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    print("ratio: (a), (d) = B / A; (b), (c) = A / B (how many times faster B is).")
    print("peak MiB: the measured process itself (for (b) A, the largest single interpreter).")
    per_group = (median(a_ours) - median(a_ref)) / 300 * 1000
    print(f"(a) cost of a process per group: {per_group:.2f} ms of wall time per group")
    print(f"(a) median CPU seconds, sphinx-build and its children: sphinx.ext.doctest "
          f"{median_cpu(a_ref):.2f}, isolated {median_cpu(a_ours):.2f}, "
          f"isolation=document {median_cpu(a_doc):.2f} (on {os.cpu_count()} CPUs)")
    return 0 if all(r[-1] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Stress the containment: many groups with faults mixed in, builds killed at random
moments, and after each the process table and the scratch folders checked.

``python tests/stress_containment.py [--rounds 20] [--groups 400] [--jobs 2]``

Each round builds a generated project of GROUPS groups, most of which pass and
one in ten of which does something a process should not: hangs past its
timeout, segfaults, exits, floods its output, forks without exiting, kills
the process it was started from, or starts processes that leave its process
group or session (setsid, ``process_group=0``, a double-forked daemon).  In
each start method ("fork", "spawn") the round runs four builds: one to its
end, one sent SIGTERM, one two SIGINTs 1 ms apart (to its process group, as
a terminal sends them), one SIGKILL, each signal at a random moment of what
the complete build took.  Every build runs under a child subreaper (see
process_tree.py), which lists every process still running after it; the
build's scratch folder (named after its pid) must be gone too.

It prints one line per build and a summary, and exits with status 1 if
anything was left.  ``run()`` is what the short version in the test suite
calls.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from process_tree import start_watched

KILLS = ("none", "sigterm", "double-sigint", "sigkill")
STARTS = ("fork", "spawn")

SETUP = """\
.. testsetup:: *

   import ctypes, os, signal, subprocess, sys, time

   def daemon():
       pid = os.fork()
       if pid == 0:
           if os.fork() == 0:
               os.setsid()
               time.sleep(300)
               os._exit(0)
           os._exit(0)
       os.waitpid(pid, 0)
"""

#: What a faulty group does, by kind: (its examples, whether it passes anyway).
FAULTS = {
    "hang": (":timeout: 1\n\n   >>> time.sleep(60)\n", False),
    "segfault": ("\n   >>> _ = ctypes.string_at(0)\n", False),
    "exit": ("\n   >>> os._exit(3)\n", False),
    "flood": ("\n   >>> for _ in range(80): _ = os.write(1, b'x' * 2**20)\n", False),
    "setsid": ("\n   >>> _ = subprocess.Popen(['setsid', 'sleep', '300'])\n", True),
    "process-group": (
        "\n   >>> _ = subprocess.Popen(['sleep', '300'], process_group=0)\n", True
    ),
    "daemon": ("\n   >>> daemon()\n", True),
    "daemon-then-hang": (":timeout: 1\n\n   >>> daemon(); time.sleep(60)\n", False),
    "fork-no-exit": ("\n   >>> pid = os.fork()\n   >>> 1 + 1\n   2\n", True),
    "kill-parent": (
        "\n   >>> os.kill(os.getppid(), signal.SIGKILL); time.sleep(30)\n", False
    ),
}


def write_corpus(folder: Path, groups: int, seed: int = 14) -> dict[str, int]:
    """A project of ``groups`` groups, 20 to a page; how many of each kind."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "conf.py").write_text(
        "extensions = ['sphinxext.isolated_doctest']\nisolated_doctest_cache = False\n"
    )
    rng = random.Random(seed)
    kinds = sorted(FAULTS)
    counts: dict[str, int] = {}
    pages = []
    for page in range((groups + 19) // 20):
        lines = [f"Page {page}\n{'=' * (5 + len(str(page)))}\n\n{SETUP}\n"]
        for n in range(page * 20, min(groups, page * 20 + 20)):
            kind = rng.choice(kinds) if n % 10 == 9 else "pass"
            counts[kind] = counts.get(kind, 0) + 1
            body = FAULTS[kind][0] if kind != "pass" else f"\n   >>> {n} + 1\n   {n + 1}\n"
            lines.append(f".. doctest:: g{n}-{kind}\n   {body}\n")
        (folder / f"p{page:02}.rst").write_text("".join(lines))
        pages.append(f"p{page:02}")
    toctree = "\n".join(f"   {name}" for name in pages)
    (folder / "index.rst").write_text(f"Stress\n======\n\n.. toctree::\n\n{toctree}\n")
    return counts


@dataclass
class Outcome:
    """One build: how it ended and what it left."""

    start: str
    kill: str
    status: int
    seconds: float
    killed_at: float | None
    left: list[dict[str, Any]]
    scratch: list[str]
    cleanup_seconds: float
    failures: int | None = None
    problems: list[str] = field(default_factory=list)


def scratch_left(pid: int) -> list[str]:
    """The scratch folders of the build that ran as ``pid``, if any is left."""
    prefix = f"isolated-doctest-{pid}-"
    return sorted(
        str(Path(folder, name))
        for folder in {"/dev/shm", tempfile.gettempdir()}
        if os.path.isdir(folder)
        for name in os.listdir(folder)
        if name.startswith(prefix)
    )


def build(
    corpus: Path, work: Path, *, start: str, kill: str, at: float, jobs: int
) -> Outcome:
    """Build ``corpus`` once, killed as ``kill`` says ``at`` seconds in."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        sys.executable, "-m", "sphinx", "-b", "doctest", "-E", "-q",
        "-D", f"isolated_doctest_start={start}", "-D", f"isolated_doctest_jobs={jobs}",
        str(corpus), str(out),
    ]
    began = time.monotonic()
    watched = start_watched(argv, work / "report.json", grace=10)
    killed_at = None
    try:
        if kill != "none":
            while time.monotonic() - began < at and watched.proc.poll() is None:
                time.sleep(0.005)
            killed_at = time.monotonic() - began
            try:
                if kill == "sigterm":
                    watched.signal(signal.SIGTERM)
                elif kill == "sigkill":
                    watched.signal(signal.SIGKILL)
                else:
                    watched.signal(signal.SIGINT, group=True)
                    time.sleep(0.001)
                    watched.signal(signal.SIGINT, group=True)
            except ProcessLookupError:
                pass  # it had ended already
        report = watched.finish(timeout=600)
    finally:
        watched.kill()
    outcome = Outcome(
        start=start, kill=kill, status=report["status"],
        seconds=time.monotonic() - began - report["seconds"], killed_at=killed_at,
        left=report["left"], scratch=scratch_left(watched.pid),
        cleanup_seconds=report["seconds"],
    )
    if outcome.left:
        outcome.problems.append(f"{len(outcome.left)} processes left: {outcome.left}")
    if outcome.scratch:
        outcome.problems.append(f"scratch left: {outcome.scratch}")
    if kill == "none":
        summary = (out / "output.txt").read_text(encoding="utf-8").rpartition("Doctest summary")[2]
        outcome.failures = int(summary.split("tests\n")[1].split()[0])
        outcome.problems += unexpected(json.loads((out / "output.json").read_text("utf-8")))
    return outcome


def unexpected(report: dict[str, Any]) -> list[str]:
    """The groups of a complete build whose outcome is not their kind's (each
    group's name ends with its kind).  A group that a server took down with it,
    when another group killed that server, is not one: with "fork", the groups
    a server runs at that moment fail with it."""
    found = []
    for group in report["groups"]:
        kind = group["group"].partition("-")[2]
        passes = kind == "pass" or FAULTS[kind][1]
        if (group["status"] == "passed") != passes and not (
            kind != "kill-parent" and group["message"].startswith("lost its fork server")
        ):
            found.append(f"{group['group']}: {group['status']} {group['message']!r}")
    return found


def run(
    *, rounds: int, groups: int, jobs: int, work: Path, starts: tuple[str, ...] = STARTS,
    kills: tuple[str, ...] = KILLS, seed: int = 14, log: Any = print,
) -> list[Outcome]:
    """``rounds`` rounds of every start method and kill; every build's outcome."""
    corpus = work / "corpus"
    counts = write_corpus(corpus, groups, seed)
    expected = sum(n for kind, n in counts.items() if kind != "pass" and not FAULTS[kind][1])
    log(f"{groups} groups: {', '.join(f'{k} {n}' for k, n in sorted(counts.items()))}")
    rng = random.Random(seed)
    outcomes = []
    complete: dict[str, float] = {}
    for number in range(1, rounds + 1):
        for start in starts:
            for kill in kills:
                at = rng.uniform(0.1, 0.9) * complete.get(start, 3.0)
                outcome = build(corpus, work, start=start, kill=kill, at=at, jobs=jobs)
                if kill == "none":
                    complete[start] = outcome.seconds
                    if outcome.failures is None or outcome.failures < expected:
                        outcome.problems.append(
                            f"{outcome.failures} failures reported, {expected} at least expected"
                        )
                outcomes.append(outcome)
                when = "" if outcome.killed_at is None else f" at {outcome.killed_at:5.2f} s"
                log(
                    f"round {number:2} {start:5} {kill:13}{when:11} status {outcome.status:3}"
                    f"  build {outcome.seconds:6.2f} s  cleanup {outcome.cleanup_seconds:5.3f} s"
                    f"  left {len(outcome.left)}  scratch {len(outcome.scratch)}"
                    + (f"  PROBLEM: {'; '.join(outcome.problems)}" if outcome.problems else "")
                )
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--groups", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stress-containment-"))
    began = time.monotonic()
    try:
        outcomes = run(rounds=args.rounds, groups=args.groups, jobs=args.jobs, work=work,
                       seed=args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bad = [o for o in outcomes if o.problems]
    print(
        f"\n{len(outcomes)} builds in {time.monotonic() - began:.0f} s: "
        f"{sum(len(o.left) for o in outcomes)} processes left, "
        f"{sum(len(o.scratch) for o in outcomes)} scratch folders left, "
        f"{len(bad)} builds with a problem; slowest clean-up after a build ended: "
        f"{max(o.cleanup_seconds for o in outcomes):.3f} s"
    )
    for start in STARTS:
        for kill in KILLS:
            times = [o.seconds for o in outcomes if (o.start, o.kill) == (start, kill)]
            if times:
                print(f"  {start:5} {kill:13} build median {sorted(times)[len(times) // 2]:.2f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

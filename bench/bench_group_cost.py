"""What one group costs in a forked worker, next to running it in-process.

A fork server (the real one, ``_child.py serve``) runs 300 groups of the shape
of case (a) of bench_doctest, two at a time; its CPU time and minor page
faults, and those of its workers, are read from /proc.  Alternating with that,
it runs 300 jobs with no group: what the process alone costs (the fork, the
job's files, the exit and the server's bookkeeping).  Under both, from an
interpreter that has loaded doctest: a bare fork and exit, and a fork whose
child does the least any group must (opens its files, compiles and runs its
statements, writes one result).  The same 300 groups then run in this process
with doctest's own runner, as sphinx.ext.doctest runs them.  Medians of ROUNDS
rounds; informational, no target (Linux only).
"""

from __future__ import annotations

import doctest
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sphinxext.isolated_doctest._child import frame, unframe
from sphinxext.isolated_doctest._job import NO_PREAMBLE, Block, GroupSpec, Job, RunSettings
from sphinxext.isolated_doctest._pool import (
    CHILD_SCRIPT,
    bell_pipe,
    job_wire,
    server_config,
    slot_files,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
GROUPS = 300
TICK = os.sysconf("SC_CLK_TCK")


def group(n: int) -> tuple[str, str]:
    """(setup code, doctest code) of group ``n``, as in bench_doctest's case (a)."""
    return f"base = {n}", f">>> base + 1\n{n + 1}\n>>> sorted({{base, 2, 1}})[-1] >= 2\nTrue\n"


SETTINGS = RunSettings(sys_path=tuple(sys.path), global_setup="", global_cleanup="",
                       optionflags=doctest.ELLIPSIS, fail_fast=False)


def wire(n: int, empty: bool) -> bytes:
    """Job ``n``: group ``n``, or (``empty``) no group at all."""
    import marshal

    setup, test = group(n)
    blocks = (
        Block(kind="testsetup", code=setup, filename="page.rst", lineno=3),
        Block(kind="doctest", code=test, filename="page.rst", lineno=7),
    )
    groups = () if empty else (GroupSpec(name=f"g{n}", blocks=blocks, timeout=0, lineno=4),)
    job = Job(
        index=n, docname="page", filename="page.rst", preamble=NO_PREAMBLE, groups=groups,
    )
    return marshal.dumps(job_wire(job, SETTINGS))


def forked_round(empty: bool) -> dict[str, float]:
    """Per job: CPU ms and faults of the server and of its workers."""
    folder = Path(tempfile.mkdtemp(prefix="group-cost-", dir="/dev/shm"))
    bell = bell_pipe()
    config = folder / "server"
    config.write_bytes(server_config(settings=SETTINGS, preamble=NO_PREAMBLE,
                                     slots=slot_files(folder, 2), bell=bell,
                                     roots=str(folder / "roots")))
    server = subprocess.Popen([sys.executable, CHILD_SCRIPT, "serve", str(config)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=bell)
    assert server.stdin is not None and server.stdout is not None
    try:
        answers = bytearray()
        exits = ready = 0
        requests = b"".join(
            frame({"t": "run", "job": str(folder / f"job{n}"), "wire": wire(n, empty)})
            for n in range(GROUPS)
        )
        while not ready:
            answers += os.read(server.stdout.fileno(), 1 << 16)
            values, used = unframe(answers)
            del answers[:used]
            ready = sum(v["t"] == "ready" for v in values)
        # Counted from here: the server's start-up is not a group's cost.
        before = _stat(server.pid)
        server.stdin.write(requests)
        server.stdin.flush()
        while exits < GROUPS:
            answers += os.read(server.stdout.fileno(), 1 << 16)
            values, used = unframe(answers)
            del answers[:used]
            exits += sum(v["t"] == "exit" for v in values)
        after = _stat(server.pid)
    finally:
        server.kill()
        server.wait()
        for fd in bell:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
    return {key: (after[key] - before[key]) / GROUPS for key in after}


def _stat(pid: int) -> dict[str, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime, cutime, cstime = (int(x) / TICK * 1000 for x in fields[11:15])
    return {
        "server_ms": utime + stime,
        "workers_ms": cutime + cstime,
        "server_faults": int(fields[7]),
        "workers_faults": int(fields[8]),
    }


FORKS = """
import doctest, gc, marshal, os, resource, sys
n, folder = int(sys.argv[1]), sys.argv[2]


def bare(i):
    os._exit(0)


def least(i):
    # What any forked group must do: its files, its code compiled and run,
    # its outputs compared, one result written.
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    for name, target in (("out", 1), ("err", 2)):
        fd = os.open(f"{folder}/{i}.{name}", flags, 0o600)
        os.dup2(fd, target)
        os.close(fd)
    events = os.open(f"{folder}/{i}.ev", flags, 0o600)
    ns = {}
    exec(compile(f"base = {i}", "page.rst", "exec"), ns)
    ok = repr(eval(compile("base + 1", "page.rst", "eval"), ns)) == str(i + 1)
    ok &= repr(eval(compile("sorted({base, 2, 1})[-1] >= 2", "page.rst", "eval"), ns)) == "True"
    data = marshal.dumps({"t": "done", "ok": ok})
    os.write(events, len(data).to_bytes(4, "little") + data)
    os._exit(0)


child = {"bare": bare, "least": least}[sys.argv[3]]
gc.freeze()
c0, s0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
for i in range(n):
    pid = os.fork()
    if pid == 0:
        child(i)
    os.waitpid(pid, 0)
c1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
cpu = lambda a, b: (b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime) * 1000 / n
print(cpu(s0, s1) + cpu(c0, c1))
"""


def fork_round(child: str) -> float:
    """CPU ms per fork, from an interpreter with doctest loaded (as a fork
    server is), of a child that exits at once (``bare``: the floor under any
    process per group) or does the least a group must (``least``)."""
    with tempfile.TemporaryDirectory(prefix="group-cost-", dir="/dev/shm") as folder:
        out = subprocess.run([sys.executable, "-c", FORKS, str(GROUPS), folder, child],
                             capture_output=True, text=True, check=True).stdout
    return float(out)


def in_process_round() -> float:
    """CPU ms per group, run with doctest's runner in this process."""
    parser = doctest.DocTestParser()
    start = time.process_time()
    for n in range(GROUPS):
        setup, test = group(n)
        globs: dict[str, object] = {}
        exec(compile(setup, "page.rst", "exec"), globs)
        runner = doctest.DocTestRunner(verbose=False, optionflags=doctest.ELLIPSIS)
        runner.run(parser.get_doctest(test, globs, f"g{n}", "page.rst", 7),
                   out=lambda text: None, clear_globs=False)
    return (time.process_time() - start) / GROUPS * 1000


def main() -> int:
    if not sys.platform.startswith("linux"):
        print("skipped: reads /proc")
        return 0
    rounds: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(ROUNDS):  # alternating, as the machine's load drifts
        for empty in rounds:
            rounds[empty].append(forked_round(empty))
    bare = [fork_round("bare") for _ in range(ROUNDS)]
    least = [fork_round("least") for _ in range(ROUNDS)]
    local = [in_process_round() for _ in range(ROUNDS)]

    def med(empty: bool, key: str) -> float:
        return statistics.median(r[key] for r in rounds[empty])

    print(f"{GROUPS} jobs, 2 at a time; medians of {ROUNDS} rounds; CPU ms and minor "
          "page faults per job")
    for empty, what in ((False, "one group"), (True, "no group (the process alone)")):
        print(f"  {what}:")
        print(f"    forked worker: {med(empty, 'workers_ms'):.2f} ms, "
              f"{med(empty, 'workers_faults'):.0f} faults")
        print(f"    fork server:   {med(empty, 'server_ms'):.2f} ms, "
              f"{med(empty, 'server_faults'):.0f} faults")
    print(f"  a bare fork and exit, nothing run in the child: {statistics.median(bare):.2f} ms")
    print("  the least a forked group can cost (its files, its code compiled and run, one "
          f"result written; no doctest runner, one at a time): {statistics.median(least):.2f} ms")
    print(f"  in-process, one group: {statistics.median(local):.3f} ms")
    total = med(False, "workers_ms") + med(False, "server_ms")
    alone = med(True, "workers_ms") + med(True, "server_ms")
    times = total / statistics.median(local)
    print(f"one group in a fresh process costs {total:.2f} ms, {times:.0f} times its "
          f"in-process run; the process alone, {alone:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

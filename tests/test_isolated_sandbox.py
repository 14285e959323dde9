"""The sandbox: each part with a group that stays inside it and one that tries to
cross it; settings per page and per block; bad settings; no network namespace."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from isolated_helpers import (
    ROOTS,
    app_with_start,
    console_warnings,
    output_body,
    output_json,
    sphinx_build,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the sandbox needs Linux"
)

DIVIDER = "*" * 70
SHOW_TYPES = {"show_warning_types": True}


@pytest.fixture
def sandbox_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A variable the sandbox passes on, a secret it must not, and a TMPDIR of
    the test's own for the files the groups write."""
    monkeypatch.setenv("ISOLATED_DOCTEST_SHARED", "shared")
    monkeypatch.setenv("ISOLATED_DOCTEST_SECRET", "a token")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    return scratch


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-sandbox", freshenv=True)
def test_each_part_of_the_sandbox_holds(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    sandbox_environ: Path,
    start: str,
) -> None:
    """The environment is cut to its names, the network to loopback (an attempt
    to leave it fails at once, saying why), and a group that goes past its
    memory, its disk or its CPU time fails there, the limit named."""
    app = app_with_start(make_app, app_params, start)
    app.build()
    body = output_body(app)
    # Each crossing, as the report says it (doctest's own summary lines, which
    # differ from one Python to the next, are left to output.json below).
    assert (
        f"{DIVIDER}\n"
        'File "index.rst", line 60, in memory-crossing\n'
        "Failed example:\n"
        "    more = bytearray(512 * 2**20)\n"
        "Used more than 256 MiB of memory in the example at line 62; "
        "the rest of group 'memory-crossing' did not run.\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 72, in disk-crossing\n'
        "Failed example:\n"
        "    for n in range(20):\n"
        "        with open(os.path.join(folder, str(n)), 'wb') as f:\n"
        "            _ = f.write(b'x' * 2**20)\n"
        "Wrote more than 8 MiB in the example at line 74; "
        "the rest of group 'disk-crossing' did not run.\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 81, in disk-crossing-below\n'
        "Failed example:\n"
        "    _ = subprocess.run(['sh', '-c', script, folder])\n"
        "Wrote more than 8 MiB in the example at line 83; "
        "the rest of group 'disk-crossing-below' did not run.\n"
        f"{DIVIDER}\n"
        'File "index.rst", line 91, in cpu-crossing\n'
        "Failed example:\n"
        "    while True:\n"
        "        pass\n"
        "Used more than 2 s of CPU time in the example at line 93; "
        "the rest of group 'cpu-crossing' did not run.\n"
    ) in body
    assert body.endswith(
        "\nDoctest summary\n===============\n   25 tests\n    4 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    groups = output_json(app)["groups"]
    assert [(g["group"], g["status"], g["tests"], g["failures"]) for g in groups] == [
        ("env-inside", "passed", 1, 0), ("env-crossing", "passed", 3, 0),
        ("network-inside", "passed", 4, 0), ("network-crossing", "passed", 6, 0),
        ("memory-inside", "passed", 1, 0), ("memory-crossing", "error", 2, 1),
        ("disk-inside", "passed", 1, 0), ("disk-crossing", "error", 2, 1),
        ("disk-crossing-below", "error", 3, 1), ("cpu-inside", "passed", 1, 0),
        ("cpu-crossing", "error", 1, 1),
    ]
    assert app.statuscode == 1
    messages = {g["group"]: g["message"] for g in output_json(app)["groups"] if g["message"]}
    assert messages == {
        "memory-crossing": "used more than 256 MiB of memory in the example at line 62",
        "disk-crossing": "wrote more than 8 MiB in the example at line 74",
        "disk-crossing-below": "wrote more than 8 MiB in the example at line 83",
        "cpu-crossing": "used more than 2 s of CPU time in the example at line 93",
    }


@pytest.mark.sphinx(
    "doctest", testroot="isolated-sandbox-pages", freshenv=True, confoverrides=SHOW_TYPES
)
def test_pages_and_blocks_ask_for_less_never_more(app: SphinxTestApp) -> None:
    """A block's ``:sandbox:`` and a page's ``:doctest-sandbox:`` add limits to
    conf.py's, and cannot lift them: conf.py turns the network off, and a
    block that turns it on still runs without; a page's memory limit holds
    for a block of it that asks for more.  A bad option or field is an error
    at its line; the other groups still run."""
    app.build()
    body = output_body(app)
    assert (
        'File "index.rst", line 14, in limited-here\n'
        "Failed example:\n"
        "    big = bytearray(128 * 2**20)\n"
        "Used more than 64 MiB of memory in the example at line 17; "
        "the rest of group 'limited-here' did not run.\n"
    ) in body
    assert "    OSError: [Errno 101] network is off for this group (isolated_doctest_sandbox)\n" \
        in body
    for line, group in ((8, "on-the-page"), (13, "more-asked")):
        assert (
            f"Used more than 64 MiB of memory in the example at line {line}; "
            f"the rest of group '{group}' did not run.\n"
        ) in body
    statuses = {g["group"]: g["status"] for g in output_json(app)["groups"]}
    assert statuses == {
        "fine": "passed", "unlimited": "passed", "limited-here": "error",
        "network-on": "failed", "on-the-page": "error", "more-asked": "error",
    }
    bad = app.srcdir / "bad.rst"
    assert console_warnings(app) == (
        f'{bad}:6: ERROR: Error in "doctest" directive:\n'
        "invalid option value: (option: \"sandbox\"; value: 'env=all')\n"
        "the environment is set in conf.py only (isolated_doctest_sandbox).\n"
        "\n"
        ".. doctest:: bad-option\n"
        "   :sandbox: env=all\n"
        "\n"
        "   >>> 'not run' [docutils]\n"
        f"{bad}:1: ERROR: :doctest-sandbox: memory=lots: 'lots' is not a size: use bytes, "
        "or a number with K, M or G; this page runs with conf.py's sandbox alone, and the "
        "build fails [isolated_doctest.config]\n"
    )
    assert app.statuscode == 1


def test_bad_sandbox_parts_each_error_and_the_build_fails(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    """Each part that cannot be used is an error at the line of conf.py that sets
    the sandbox; the build runs with the good parts only, and fails."""
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-cache", srcdir)
    conf = srcdir / "conf.py"
    conf.write_text(
        conf.read_text()
        + "isolated_doctest_sandbox = {\n"
        "    'memory': '1G', 'disk': 0, 'cpu': True, 'env': 'PATH', 'network': 'off',\n"
        "    'memroy': 2**30, 'cpu_time': 5,\n"
        "}\n"
    )
    line = len(conf.read_text().splitlines()) - 3
    app = make_app("doctest", srcdir=srcdir, freshenv=True, confoverrides=SHOW_TYPES)
    fail = "this build runs without it, and fails [isolated_doctest.config]"
    assert console_warnings(app).splitlines() == [
        f"{conf}:{line}: ERROR: isolated_doctest_sandbox[{part!r}] = {value!r}: {fix}; {fail}"
        for part, value, fix in [
            ("memory", "1G", "use a whole number of bytes from 1, or None for no limit"),
            ("disk", 0, "use a whole number of bytes from 1, or None for no limit"),
            ("cpu", True, "use a number of seconds above 0, or None for no limit"),
            ("env", "PATH", "use True (the default names), False (everything), or a list "
                            "of names to pass as well ('*' matches anything)"),
            ("network", "off", "use True or False"),
            ("memroy", 2**30, "not a part of the sandbox: use 'env', 'network', 'memory', "
                              "'disk' or 'cpu'"),
            ("cpu_time", 5, "not a part of the sandbox: use 'env', 'network', 'memory', "
                            "'disk' or 'cpu'"),
        ]
    ]
    assert not app.builder.settings.sandbox
    app.build()
    assert app.statuscode == 1


def test_a_sandbox_that_is_not_a_dict(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-cache", srcdir)
    conf = srcdir / "conf.py"
    conf.write_text(conf.read_text() + "isolated_doctest_sandbox = ['network']\n")
    line = len(conf.read_text().splitlines())
    app = make_app("doctest", srcdir=srcdir, freshenv=True, confoverrides=SHOW_TYPES)
    assert console_warnings(app).splitlines()[-1] == (
        f"{conf}:{line}: ERROR: isolated_doctest_sandbox = ['network']: use a dict with any "
        "of 'env', 'network', 'memory', 'disk', 'cpu'; this build runs without a sandbox, "
        "and fails [isolated_doctest.config]"
    )
    assert app.statuscode == 1


def _why_no_capability_drop() -> str | None:
    """Why this machine cannot run a build as root without CAP_SYS_ADMIN, if so."""
    if os.geteuid() != 0:
        return "needs root, to take CAP_SYS_ADMIN away from a build run as root"
    if shutil.which("setpriv") is None:
        return "setpriv(1) is not installed"
    return None


def test_without_network_namespaces_nothing_runs_unprotected(tmp_path: Path) -> None:
    """Where the kernel refuses a network namespace (here: root without
    CAP_SYS_ADMIN, as in many containers), a sandbox without network is an
    error, said once at its line; its groups are not run, each reported as
    such, and the build fails."""
    reason = _why_no_capability_drop()
    if reason:
        pytest.skip(reason)
    srcdir = tmp_path / "src"
    shutil.copytree(ROOTS / "test-isolated-sandbox-pages", srcdir)
    build = sphinx_build(
        srcdir, tmp_path / "out", "-D", "show_warning_types=1",
        wrapper=["setpriv", "--bounding-set=-sys_admin", "--"],
    )
    assert build.returncode == 1, build.stderr
    errors = [line for line in build.stderr.splitlines() if "isolated_doctest_sandbox[" in line]
    assert errors == [
        f"{srcdir / 'conf.py'}:2: ERROR: isolated_doctest_sandbox['network'] = False: this "
        "system cannot give a group a network namespace of its own ([Errno 1] unshare: "
        "Operation not permitted); the groups without network are not run, and this build "
        "fails [isolated_doctest.config]"
    ]
    body = (tmp_path / "out" / "output.txt").read_text(encoding="utf-8")
    refusal = (
        "Cannot run:\n"
        "    network is off for this group, and this system cannot give it a network "
        "namespace of its own ([Errno 1] unshare: Operation not permitted): it is not run\n"
    )
    assert (
        "\nDocument: index\n"
        "---------------\n"
        f'{DIVIDER}\nFile "index.rst", line 9, in unlimited (setup code)\n{refusal}'
        f'{DIVIDER}\nFile "index.rst", line 14, in limited-here (setup code)\n{refusal}'
        f'{DIVIDER}\nFile "index.rst", line 19, in network-on (setup code)\n{refusal}'
        f"{DIVIDER}\n"
        "3 items had failures:\n"
        "   1 of   1 in limited-here (setup code)\n"
        "   1 of   1 in network-on (setup code)\n"
        "   1 of   1 in unlimited (setup code)\n"
        "***Test Failed*** 3 failures.\n"
    ) in body
    assert body.endswith(
        "\nDoctest summary\n===============\n    0 tests\n    0 failures in tests\n"
        "    6 failures in setup code\n    0 failures in cleanup code\n"
    )

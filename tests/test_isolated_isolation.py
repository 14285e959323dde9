"""Each group runs in a fresh child: nothing it does reaches another group or the build.

The ``isolated-levels`` root has a group that leaves behind everything a test
can leave behind (a module attribute, a global, an open file descriptor,
gevent's monkey-patching) and groups that look for it.  Which of them see it
shows where the process boundaries are at each isolation level.
"""

from __future__ import annotations

import contextlib
import doctest
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from isolated_helpers import app_with_start, build_with, output_body

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sphinx.testing.util import SphinxTestApp




def _own_fd_links() -> list[str]:
    links = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/self/fd/{name}"))
    return links


SUMMARY_PASSED = """
Doctest summary
===============
   16 tests
    0 failures in tests
    0 failures in setup code
    0 failures in cleanup code
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
@pytest.mark.sphinx("doctest", testroot="isolated-levels", freshenv=True)
def test_group_level_shares_nothing_between_groups(app: SphinxTestApp) -> None:
    gevent_before = "gevent" in sys.modules
    app.build()
    body = output_body(app)
    assert body == (
        "\nDocument: index\n"
        "---------------\n"
        "3 items passed all tests:\n"
        "   5 tests in blocks\n"
        "   6 tests in one\n"
        "   5 tests in two\n"
        "16 tests in 3 items.\n"
        "16 passed and 0 failed.\n"
        "Test passed.\n" + SUMMARY_PASSED
    )
    assert app.statuscode == 0
    # The build process itself was never patched and holds no descriptor of a child's.
    assert socket.socket.__module__ == "socket"
    assert ("gevent" in sys.modules) == gevent_before
    assert not any("isolated-fd-marker" in link for link in _own_fd_links())


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx(
    "doctest",
    testroot="isolated-levels",
    freshenv=True,
    confoverrides={"isolated_doctest_isolation": "document"},
)
def test_document_level_shares_modules_not_namespaces(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list, dict], start: str
) -> None:
    app = app_with_start(make_app, app_params, start)
    app.build()
    body = output_body(app)
    # One child for the page: sys attributes, the patch and the descriptor carry
    # over from group 'one' to group 'two' ...
    assert (
        'File "index.rst", line 19, in two\n'
        "Failed example:\n"
        "    hasattr(sys, 'leaked_from_one')\n"
        "Expected:\n"
        "    False\n"
        "Got:\n"
        "    True\n"
    ) in body
    assert (
        'File "index.rst", line 23, in two\n'
        "Failed example:\n"
        "    socket.socket.__module__\n"
        "Expected:\n"
        "    'socket'\n"
        "Got:\n"
        "    'gevent._socket3'\n"
    ) in body
    assert "    print(any('isolated-fd-marker' in link for link in links))\n" in body
    # ... but each group has a fresh namespace, so 'GLOBAL_ONE' in globals() passed.
    assert "'GLOBAL_ONE' in globals()" not in body
    assert "   3 of   5 in two\n" in body.splitlines(keepends=True)
    assert body.endswith(
        "\nDoctest summary\n===============\n   16 tests\n    3 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 1
    assert socket.socket.__module__ == "socket"


@pytest.mark.sphinx(
    "doctest",
    testroot="isolated-levels",
    freshenv=True,
    confoverrides={"isolated_doctest_isolation": "block"},
)
def test_block_level_shares_nothing_between_blocks(app: SphinxTestApp) -> None:
    app.build()
    body = output_body(app)
    assert body == (
        "\nDocument: index\n"
        "---------------\n"
        "**********************************************************************\n"
        'File "index.rst", line 55, in blocks\n'
        "Failed example:\n"
        "    hasattr(sys, 'block_state')\n"
        "Expected:\n"
        "    True\n"
        "Got:\n"
        "    False\n"
        "**********************************************************************\n"
        'File "index.rst", line 57, in blocks\n'
        "Failed example:\n"
        "    'shared_name' in globals()\n"
        "Expected:\n"
        "    True\n"
        "Got:\n"
        "    False\n"
        "2 items passed all tests:\n"
        "   6 tests in one\n"
        "   5 tests in two\n"
        "**********************************************************************\n"
        "1 items had failures:\n"
        "   2 of   5 in blocks\n"
        "16 tests in 3 items.\n"
        "14 passed and 2 failed.\n"
        "***Test Failed*** 2 failures.\n"
        "\nDoctest summary\n===============\n   16 tests\n    2 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    # 'sys.setups' was 1 in each block: each had its own child and ran the setup once.
    assert app.statuscode == 1


@pytest.fixture
def _clean_reference() -> Iterator[None]:
    """Undo what the in-process reference builder leaves in this process."""
    modules = set(sys.modules)
    saved = doctest.__dict__.get("compile")
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    if saved is None:
        doctest.__dict__.pop("compile", None)
    else:
        doctest.compile = saved  # type: ignore[attr-defined]


@pytest.mark.usefixtures("_clean_reference")
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_child_sees_reference_sys_path_and_cwd(
    make_app: Callable[..., SphinxTestApp],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: str,
) -> None:
    """conf.py's sys.path additions and doctest_path, in the reference's order; same cwd."""
    seen = {}
    for extension, conf in [
        ("sphinxext.isolated_doctest", {"isolated_doctest_start": start}),
        ("sphinx.ext.doctest", {}),
    ]:
        record = tmp_path / f"{extension}.json"
        monkeypatch.setenv("ISOLATED_DOCTEST_PATHS", str(record))
        body, _status, _warnings, code = build_with(
            make_app, tmp_path, extension, "isolated-paths", **conf
        )
        assert code == 0, body
        data = json.loads(record.read_text(encoding="utf-8"))
        # The two builds have their own copies of the root: compare relative to them.
        srcdir = str(tmp_path / extension)
        data["sys_path"] = [p.replace(srcdir, "<srcdir>") for p in data["sys_path"]]
        seen[extension] = data

    ours, reference = seen["sphinxext.isolated_doctest"], seen["sphinx.ext.doctest"]
    assert ours["sys_path"] == reference["sys_path"]
    assert ours["sys_path"][:2] == ["<srcdir>/dp_dir", "<srcdir>/mymod_dir"]
    assert ours["cwd"] == reference["cwd"] == os.getcwd()

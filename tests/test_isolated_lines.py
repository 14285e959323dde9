"""Our own messages name the line of the example, in rst and MyST pages alike.

A report's ``File "..."`` line is the reference's, which counts from the
directive's line (MyST's opening fence); our sentence under it names the line
the example is on, counting options, blank lines and YAML option blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from isolated_helpers import app_with_start, output_body, output_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

DIVIDER = "*" * 70


def _report(header: str, source: str, sentence: str) -> str:
    body = "".join(f"    {line}\n" if line else "\n" for line in source.split("\n"))
    return f"{DIVIDER}\n{header}\nFailed example:\n{body}{sentence}\n"


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-myst", freshenv=True)
def test_messages_name_the_examples_line(
    make_app: Callable[..., SphinxTestApp], app_params: tuple[list[Any], dict[str, Any]], start: str
) -> None:
    app = app_with_start(make_app, app_params, start)
    app.build()
    body = output_body(app)
    for header, source, sentence in [
        # MyST: a fence with an option and a blank line.
        ('File "index.md", line 13, in hang', "time.sleep(60)",
         "Timed out after 1 s in the example at line 16; the rest of group 'hang' did not run."),
        # Setup code: the block is the example; its first line of code.
        ('File "index.md", line 19, in setup-exit (setup code)', "import os\n\nos._exit(4)",
         "Exited with status 4 in the example at line 20; "
         "the rest of group 'setup-exit' did not run."),
        # A colon fence.
        ('File "index.md", line 59, in segfault', "import ctypes\nctypes.string_at(0)",
         "Killed by SIGSEGV in the example at line 31; the rest of group 'segfault' did not run."),
        # A YAML block of options; the runner itself fails.
        ('File "index.md", line 37, in runner', "raise ValueError('the runner cannot report it')",
         "Failed inside the doctest runner in the example at line 41; "
         "the rest of group 'runner' did not run."),
        # The same in rst: options, a blank line inside the code.
        ('File "page.rst", line 4, in setup-exit (setup code)', "import os\n\nos._exit(4)",
         "Exited with status 4 in the example at line 7; "
         "the rest of group 'setup-exit' did not run."),
        ('File "page.rst", line 18, in runner', "raise ValueError('the runner cannot report it')",
         "Failed inside the doctest runner in the example at line 21; "
         "the rest of group 'runner' did not run."),
    ]:
        assert _report(header, source, sentence) in body
    # The runner's own traceback is doctest's, with no frame of ours.
    assert "    TypeError: 'NoneType' object is not callable\n" in body
    assert "_child.py" not in body
    assert body.endswith(
        "\nDoctest summary\n===============\n   10 tests\n    4 failures in tests\n"
        "    2 failures in setup code\n    0 failures in cleanup code\n"
    )
    messages = {(g["file"], g["group"]): g["message"] for g in output_json(app)["groups"]}
    assert messages == {
        ("index.md", "before"): "",
        ("index.md", "hang"): "timed out after 1 s in the example at line 16",
        ("index.md", "setup-exit"): "exited with status 4 in the example at line 20",
        ("index.md", "segfault"): "killed by SIGSEGV in the example at line 31",
        ("index.md", "runner"): "failed inside the doctest runner in the example at line 41",
        ("page.rst", "setup-exit"): "exited with status 4 in the example at line 7",
        ("page.rst", "runner"): "failed inside the doctest runner in the example at line 21",
    }
    assert app.statuscode == 1

"""Containment: nothing a group starts outlives it, and nothing the build starts
outlives the build, however either ends (checked in the process table, by pid)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest
from isolated_helpers import app_with_start, output_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process checks read /proc"
)


@pytest.mark.parametrize("start", ["fork", "spawn"])
@pytest.mark.sphinx("doctest", testroot="isolated-fork-child", freshenv=True)
def test_a_forked_child_that_goes_on_reports_nothing(
    make_app: Callable[..., SphinxTestApp],
    app_params: tuple[list[Any], dict[str, Any]],
    start: str,
) -> None:
    """An example forks and its child, not exiting, goes on through the rest of
    the examples: only the group's own process reports them."""
    app = app_with_start(make_app, app_params, start)
    app.build()
    assert output_body(app) == (
        "\nDocument: index\n"
        "---------------\n"
        "2 items passed all tests:\n"
        "   1 tests in after\n"
        "   4 tests in faulty\n"
        "5 tests in 2 items.\n"
        "5 passed and 0 failed.\n"
        "Test passed.\n"
        "\nDoctest summary\n===============\n    5 tests\n    0 failures in tests\n"
        "    0 failures in setup code\n    0 failures in cleanup code\n"
    )
    assert app.statuscode == 0

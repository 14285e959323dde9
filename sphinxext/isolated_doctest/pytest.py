"""A pytest plugin: every doctest group of a Sphinx project as a test item.

``pytest --sphinx-doctest=docs`` reads the project in ``docs`` (``conf.py``
there, or in ``--sphinx-doctest-confdir``) and collects one item per doctest
group, ``docs/guide/page.rst::group``, run by the builder's executor (each in
a fresh process, after its preamble, with its timeout) and reported with the
builder's text.  The ini options ``sphinx_doctest`` and
``sphinx_doctest_confdir`` do the same.  Without either, the plugin does
nothing: pytest loads it (from its ``pytest11`` entry point, or with
``-p sphinxext.isolated_doctest.pytest``), and nothing more.

This module imports nothing of Sphinx until the plugin is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _pytest.config.argparsing import Parser

#: The name the plugin's session object is registered under.
SESSION_PLUGIN = "sphinxext.isolated_doctest.session"


class SphinxWarning(UserWarning):
    """A warning Sphinx wrote while reading the project or running a group.

    Filter it as any warning: ``-W ignore::sphinxext.isolated_doctest.pytest.SphinxWarning``.
    """


def pytest_addoption(parser: Parser) -> None:
    group = parser.getgroup("sphinx-doctest", "Sphinx doctests (sphinxext.isolated_doctest)")
    group.addoption(
        "--sphinx-doctest",
        metavar="SOURCEDIR",
        dest="sphinx_doctest",
        default=None,
        help="collect the doctest groups of the Sphinx project in SOURCEDIR, one item each",
    )
    group.addoption(
        "--sphinx-doctest-confdir",
        metavar="DIR",
        dest="sphinx_doctest_confdir",
        default=None,
        help="the folder of the project's conf.py (default: SOURCEDIR)",
    )
    group.addoption(
        "--sphinx-doctest-builddir",
        metavar="DIR",
        dest="sphinx_doctest_builddir",
        default=None,
        help="where Sphinx keeps its doctrees and the results cache between runs "
        "(default: in pytest's cache folder)",
    )
    parser.addini(
        "sphinx_doctest", "the Sphinx source folder whose doctest groups are collected",
        default="",
    )
    parser.addini("sphinx_doctest_confdir", "the folder of conf.py (default: the source folder)",
                  default="")
    parser.addini("sphinx_doctest_builddir", "where doctrees and results are kept", default="")


def _setting(config: pytest.Config, name: str) -> Path | None:
    """An option's folder: from the command line (relative to where pytest
    runs), else from the ini file (relative to it)."""
    value = config.getoption(name)
    if value:
        return Path(config.invocation_params.dir, value).resolve()
    value = str(config.getini(name) or "").strip()
    if value:
        base = config.inipath.parent if config.inipath else config.rootpath
        return Path(base, value).resolve()
    return None


def pytest_configure(config: pytest.Config) -> None:
    srcdir = _setting(config, "sphinx_doctest")
    if srcdir is None:
        return
    confdir = _setting(config, "sphinx_doctest_confdir") or srcdir
    if not srcdir.is_dir():
        raise pytest.UsageError(
            f"--sphinx-doctest={srcdir}: no such folder; give the Sphinx source folder "
            "(the one with index.rst)"
        )
    if not (confdir / "conf.py").is_file():
        hint = "" if config.getoption("sphinx_doctest_confdir") else (
            "; if conf.py is elsewhere, give its folder with --sphinx-doctest-confdir"
        )
        raise pytest.UsageError(f"{confdir / 'conf.py'}: no such file{hint}")
    from sphinxext.isolated_doctest._pytest_items import DoctestSession

    session = DoctestSession(
        config=config,
        srcdir=srcdir,
        confdir=confdir,
        builddir=_setting(config, "sphinx_doctest_builddir"),
    )
    config.pluginmanager.register(session, SESSION_PLUGIN)

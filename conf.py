"""Sphinx configuration for the project's own documentation.

Build from the repository root: ``sphinx-build -c . docs _build/html``.
The docs are doctested by ``sphinxext.isolated_doctest`` (``make doctest``)
and every cross-reference is checked by ``sphinxext.xref_check`` against
pinned snapshots of the Python, gevent and PyMongo inventories, so the build
never needs the network.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
INVENTORIES = ROOT / "docs" / "_inventories"

with (ROOT / "pyproject.toml").open("rb") as _f:
    _project = tomllib.load(_f)["project"]

project = "sphinxext-isolated-doctest"
author = "The sphinxext-isolated-doctest authors"
copyright = f"2025, {author}"
release = _project["version"]
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinxext.isolated_doctest",
    "sphinxext.xref_check",
    "sphinx.ext.intersphinx",
    "sphinx.ext.autodoc",
    "sphinx_autodoc_typehints",
]

exclude_patterns = ["_build", "_inventories"]
nitpicky = True

# -- Intersphinx: real online docs, pinned local inventories -----------------
# Links point at the published documentation; the inventories are read from
# the snapshots committed in docs/_inventories (see inventories.lock there),
# copied from Debian's python3-doc, python-gevent-doc and python-pymongo-doc.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11/", str(INVENTORIES / "python.inv")),
    "gevent": ("https://www.gevent.org/", str(INVENTORIES / "gevent.inv")),
    "pymongo": ("https://pymongo.readthedocs.io/en/3.11.0/", str(INVENTORIES / "pymongo.inv")),
}
intersphinx_timeout = 5

# -- Doctests -----------------------------------------------------------------
# No global preamble: the gevent and eventlet pages set theirs with the
# ``:doctest-preamble:`` metadata field, so every other page runs unpatched.
isolated_doctest_preamble = ""
isolated_doctest_isolation = "group"
isolated_doctest_timeout = 60

# -- Autodoc --------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
typehints_fully_qualified = False
always_document_param_types = False
# Sphinx and docutils publish no inventory we pin; their types in our
# signatures are named, not linked.
nitpick_ignore_regex = [
    (r"py:.*", r"(sphinx|docutils)(\..*)?"),
]

# -- HTML -----------------------------------------------------------------------
html_theme = "furo"
html_title = f"sphinxext-isolated-doctest {release}"
pygments_style = "sphinx"
pygments_dark_style = "monokai"

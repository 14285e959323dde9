"""Sphinx configuration for the project's own documentation.

Build from the repository root: ``sphinx-build -c . docs _build/html``.
The docs are doctested by ``sphinxext.isolated_doctest`` (``make doctest``)
and every cross-reference is checked by ``sphinxext.xref_check`` against
pinned snapshots of the Python, gevent and PyMongo inventories, so the build
never needs the network.
"""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from docutils import nodes
from sphinx.domains.std import ConfigurationValue

if TYPE_CHECKING:
    from sphinx import addnodes
    from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parent

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
    # Markdown pages (guide/myst.md), doctested like the others.
    "myst_parser",
]

exclude_patterns = ["_build", "_inventories"]
nitpicky = True

# -- Intersphinx and the reference check ----------------------------------------
# Links point at the published documentation. The inventories themselves are
# read from the snapshot committed in docs/_inventories: Debian's python3-doc,
# python-gevent-doc and python-pymongo-doc files, pinned by sha256 in
# docs/_inventories/inventories.lock. With snapshot mode "only" the build
# never touches the network, and a damaged or edited snapshot stops it.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3.11/", None),
    "gevent": ("https://www.gevent.org/", None),
    "pymongo": ("https://pymongo.readthedocs.io/en/3.11.0/", None),
}
intersphinx_timeout = 5
xref_check_snapshot = "docs/_inventories"
xref_check_snapshot_mode = "only"
# The pinned gevent (22.10) and PyMongo (3.11) inventories are older than the
# versions the examples run with; we link to them on purpose, and every
# reference these pages make exists in both. The check still reports any
# reference whose target is missing from either side ("version" findings).
suppress_warnings = ["xref_check.version_skew"]

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

# sphinx-autodoc-typehints still calls an API that Sphinx 10 removes; that is
# its maintainers' to fix, and the notice repeats for every docstring.
warnings.filterwarnings(
    "ignore", message=r".*set_application.* is deprecated", module="sphinx_autodoc_typehints"
)

# -- HTML -----------------------------------------------------------------------
html_theme = "furo"
html_title = f"sphinxext-isolated-doctest {release}"


# -- The configuration reference --------------------------------------------------
class CompactConfval(ConfigurationValue):
    """``.. confval::`` with its type and default on one line, not a field each."""

    def transform_content(self, content_node: addnodes.desc_content) -> None:
        super().transform_content(content_node)
        if not content_node.children or not isinstance(content_node[0], nodes.field_list):
            return
        fields = content_node[0]
        line = nodes.paragraph(classes=["confval-summary"])
        for field in [f for f in fields.children if isinstance(f, nodes.field)]:
            if len(line):
                line += nodes.Text(" · ")
            line += nodes.strong(text=f"{field[0].astext()}: ")
            line += field[1].children
            fields.remove(field)
        content_node[0:1] = [line, *fields.children]  # any parsing message stays


def setup(app: Sphinx) -> None:
    app.add_directive_to_domain("std", "confval", CompactConfval, override=True)

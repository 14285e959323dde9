"""Run Sphinx doctests in fresh, isolated processes.

A drop-in for :mod:`sphinx.ext.doctest`: the same directives, options, config
values and ``doctest`` builder, but each doctest group runs in a child process
that starts pristine, applies its *preamble* (such as gevent's monkey-patching)
before anything else is imported, and cannot hang, crash or leak into the build.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Set

    from docutils import nodes
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment
    from sphinx.util.typing import ExtensionMetadata

    from sphinxext.isolated_doctest._builder import IsolatedDocTestBuilder
    from sphinxext.isolated_doctest._job import NAMED_PREAMBLES
    from sphinxext.isolated_doctest._shared import Subtype

__version__ = "0.1.0"
__all__ = ["NAMED_PREAMBLES", "IsolatedDocTestBuilder", "Subtype", "setup"]

#: Where each name of ``__all__`` lives.  They are imported when first used:
#: pytest imports this package for its plugin (``.pytest``) in every run, and
#: a run that does not ask for the plugin should not pay for importing Sphinx.
_LAZY = {
    "IsolatedDocTestBuilder": "_builder",
    "NAMED_PREAMBLES": "_job",
    "Subtype": "_shared",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _read_ahead(app: Sphinx, doctree: nodes.document) -> None:
    from sphinxext.isolated_doctest._builder import IsolatedDocTestBuilder

    if isinstance(app.builder, IsolatedDocTestBuilder):
        app.builder.read_ahead(app.env.docname, doctree)


def _read_ahead_merged(
    app: Sphinx, env: BuildEnvironment, docnames: Set[str], other: BuildEnvironment
) -> None:
    from sphinxext.isolated_doctest._builder import IsolatedDocTestBuilder

    if isinstance(app.builder, IsolatedDocTestBuilder):
        app.builder.read_ahead_merged(docnames)


def _stop(app: Sphinx, exception: Exception | None) -> None:
    """However the build ends, no child outlives it."""
    from sphinxext.isolated_doctest._builder import IsolatedDocTestBuilder

    if isinstance(app.builder, IsolatedDocTestBuilder):
        app.builder.executor.close()


def setup(app: Sphinx) -> ExtensionMetadata:
    from sphinxext.isolated_doctest import _config, _directives
    from sphinxext.isolated_doctest._builder import IsolatedDocTestBuilder
    from sphinxext.isolated_doctest._shared import Subtype, line_of, warn

    metadata: ExtensionMetadata = {
        "version": __version__,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
    if "sphinx.ext.doctest" in {*app.extensions, *app.config.extensions}:
        # Both would register the same directives and builder; Sphinx stops
        # with a crash report on the second.  Leave the field to the reference
        # builder, say why, and fail the build.
        conf_py = Path(app.confdir, "conf.py")
        warn(
            "sphinxext.isolated_doctest replaces sphinx.ext.doctest: remove "
            "'sphinx.ext.doctest' from extensions in conf.py; this build runs "
            "sphinx.ext.doctest alone and fails",
            subtype=Subtype.CONFIG,
            location=f"{conf_py}:{line_of(conf_py, 'extensions') or 1}",
            error=True,
        )
        app.statuscode = 1
        return metadata
    _directives.register(app)
    _config.register(app)
    app.add_builder(IsolatedDocTestBuilder)
    app.connect("config-inited", _config.check)
    # Late, so that the doctree is as it will be pickled (our preambles resolved).
    app.connect("doctree-read", _read_ahead, priority=900)
    app.connect("env-merge-info", _read_ahead_merged, priority=900)
    app.connect("build-finished", _stop)
    try:
        from sphinxext.isolated_doctest._html import setup_html
    except ImportError:
        pass
    else:
        setup_html(app)
    return metadata

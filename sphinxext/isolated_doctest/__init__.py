"""Run Sphinx doctests in fresh, isolated processes.

A drop-in for :mod:`sphinx.ext.doctest`: the same directives, options, config
values and ``doctest`` builder, but each doctest group runs in a child process
that starts pristine, applies its *preamble* (such as gevent's monkey-patching)
before anything else is imported, and cannot hang, crash or leak into the build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sphinxext.isolated_doctest import _config, _directives
from sphinxext.isolated_doctest._builder import IsolatedDocTestBuilder
from sphinxext.isolated_doctest._job import NAMED_PREAMBLES
from sphinxext.isolated_doctest._shared import Subtype

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx
    from sphinx.util.typing import ExtensionMetadata

__version__ = "0.1.0"
__all__ = ["NAMED_PREAMBLES", "IsolatedDocTestBuilder", "Subtype", "setup"]


def _read_ahead(app: Sphinx, doctree: nodes.document) -> None:
    if isinstance(app.builder, IsolatedDocTestBuilder):
        app.builder.read_ahead(app.env.docname, doctree)


def _stop(app: Sphinx, exception: Exception | None) -> None:
    """However the build ends, no child outlives it."""
    if isinstance(app.builder, IsolatedDocTestBuilder):
        app.builder.executor.close()


def setup(app: Sphinx) -> ExtensionMetadata:
    if "sphinx.ext.doctest" in app.extensions:
        from sphinx.errors import ExtensionError

        raise ExtensionError(
            "sphinxext.isolated_doctest replaces sphinx.ext.doctest: "
            "remove 'sphinx.ext.doctest' from extensions in conf.py"
        )
    _directives.register(app)
    _config.register(app)
    app.add_builder(IsolatedDocTestBuilder)
    app.connect("config-inited", _config.check)
    # Late, so that the doctree is as it will be pickled (our preambles resolved).
    app.connect("doctree-read", _read_ahead, priority=900)
    app.connect("build-finished", _stop)
    try:
        from sphinxext.isolated_doctest._html import setup_html
    except ImportError:
        pass
    else:
        setup_html(app)
    return {
        "version": __version__,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }

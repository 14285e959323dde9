"""Check cross-references against the intersphinx inventories and explain each failure.

Every reference that does not resolve gets one warning at its line, with a cause
(:class:`Subtype`) and the fix: the reference to paste, the role to use, the inventory
that did not load or the version that differs from the installed package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sphinxext.xref_check._build import (
    ExternalReferenceCheck,
    on_build_finished,
    on_builder_inited_after_load,
    on_builder_inited_before_load,
    on_config_inited,
    on_doctree_resolved,
    on_missing_reference,
)
from sphinxext.xref_check._config import CONFIG_VALUES, add_config_values
from sphinxext.xref_check._index import TargetIndex
from sphinxext.xref_check._shared import Subtype

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.util.typing import ExtensionMetadata

__all__ = ["CONFIG_VALUES", "Subtype", "TargetIndex", "setup"]

__version__ = "0.1.0"


def setup(app: Sphinx) -> ExtensionMetadata:
    app.setup_extension("sphinx.ext.intersphinx")
    add_config_values(app)
    # intersphinx normalises intersphinx_mapping at priority 800; the snapshot needs
    # the normalised form.
    app.connect("config-inited", on_config_inited, priority=850)
    # intersphinx loads the inventories at the default priority, 500.
    app.connect("builder-inited", on_builder_inited_before_load, priority=400)
    app.connect("builder-inited", on_builder_inited_after_load, priority=600)
    app.connect("missing-reference", on_missing_reference, priority=900)
    app.connect("doctree-resolved", on_doctree_resolved)
    app.connect("build-finished", on_build_finished)
    app.add_post_transform(ExternalReferenceCheck)
    return {
        "version": __version__,
        "env_version": 1,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }

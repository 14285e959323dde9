"""What differs between the supported Sphinx versions, turned into our own plain data.

The other stages read Sphinx's data only through these helpers, so none of them asks
which Sphinx is installed. Each helper tells the shape it reads from what it finds,
not from a version number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sphinx.environment import BuildEnvironment


def inventory_item_project(item: object) -> tuple[str, str]:
    """``(project, version)`` of one inventory item.

    Sphinx 8.2 and later store an ``_InventoryItem``, whose tuple access is deprecated;
    Sphinx 7.4 a plain ``(project, version, uri, display name)`` tuple.
    """
    project = getattr(item, "project_name", None)
    if project is not None:
        return str(project), str(getattr(item, "project_version", ""))
    if isinstance(item, tuple) and len(item) >= 2:
        return str(item[0]), str(item[1])
    return "", ""


def inventory_project(inventory: Mapping[str, Mapping[str, object]]) -> tuple[str, str]:
    """``(project, version)`` an inventory documents, from the first item that names one."""
    for items in inventory.values():
        for item in items.values():
            project, version = inventory_item_project(item)
            if project:
                return project, version
            break  # every item of an inventory carries the same header
    return "", ""


def current_docname(env: BuildEnvironment) -> str:
    """The document being read or resolved.

    ``env.current_document`` exists from Sphinx 8.2; before, only ``env.docname``.
    """
    current = getattr(env, "current_document", None)
    if current is not None:
        return str(current.docname)
    return str(getattr(env, "docname", ""))


def intersphinx_projects(
    mapping: Mapping[str, object],
) -> dict[str, tuple[str, tuple[str | None, ...]]]:
    """``{name: (uri, locations)}`` of the named ``intersphinx_mapping`` entries.

    *mapping* is ``config.intersphinx_mapping`` after intersphinx normalised it to
    ``{key: (name, (uri, locations))}``. Sphinx 7.x also keeps pre-1.0 entries, whose
    name is None: they load into no named inventory, so nothing can be said about them
    by name and they are left out. It also wraps a list of locations in a tuple
    instead of converting it; the locations are flattened here.
    """
    projects: dict[str, tuple[str, tuple[str | None, ...]]] = {}
    for value in mapping.values():
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            continue  # intersphinx reported it and dropped it
        name, target = value
        if not isinstance(name, str) or not name:
            continue
        if not isinstance(target, (tuple, list)) or len(target) != 2:
            continue
        uri, raw = target
        locations: list[str | None] = []
        for location in raw if isinstance(raw, (tuple, list)) else (raw,):
            if isinstance(location, (tuple, list)):
                locations.extend(location)
            else:
                locations.append(location)
        projects[name] = (str(uri), tuple(locations))
    return projects

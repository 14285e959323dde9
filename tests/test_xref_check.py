"""The warning lines a user sees for each cause, and the JSON report and baseline."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from xref_fixtures import DEMO_ENTRIES, SPHINX_ENTRIES, copy_root, warning_lines, write_inventory

if TYPE_CHECKING:
    from collections.abc import Callable

    from sphinx.testing.util import SphinxTestApp

#: The import check names the installed Sphinx in its messages.
INSTALLED_SPHINX = importlib.metadata.version("sphinx")


def _basic_app(
    make_app: Callable[..., SphinxTestApp],
    tmp_path: Path,
    *,
    baseline: str | None = None,
    **overrides: Any,
) -> SphinxTestApp:
    srcdir = copy_root("xref-basic", tmp_path)
    if baseline is not None:
        (srcdir / "baseline.txt").write_text(baseline)
        overrides["xref_check_baseline"] = "baseline.txt"
    demo = write_inventory(tmp_path / "inv" / "demo.inv", "Demo", "2.0", DEMO_ENTRIES)
    sphinx_inv = write_inventory(tmp_path / "inv" / "sphinx.inv", "Sphinx", "1.0", SPHINX_ENTRIES)
    mapping = {
        "demo": ("https://demo.example/", demo),
        "sphinx": ("https://sphinx.example/", sphinx_inv),
    }
    return make_app(
        "html", srcdir=srcdir, confoverrides={"intersphinx_mapping": mapping, **overrides}
    )


def test_each_cause_gets_its_line_and_fix(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _basic_app(make_app, tmp_path)
    app.build()
    index = app.srcdir / "index.rst"
    # the fake inventory documents Sphinx 1.0, older than any supported one
    skew = [
        f"WARNING: inventory 'sphinx' is for Sphinx 1.0 but Sphinx {INSTALLED_SPHINX} is "
        "installed; link to the documentation of the installed version in "
        "intersphinx_mapping['sphinx'] [xref_check.version_skew]"
    ]
    assert warning_lines(app) == [
        *skew,
        # :external: roles are resolved first, by their own post-transform
        f"{index}:10: WARNING: py:meth reference target not found: demo.Widget.spim; did you "
        "mean :meth:`demo.Widget.spin`? [xref_check.not_found]",
        f"{index}:6: WARNING: py:meth reference target not found: demo.Widget.spinn; did you "
        "mean :meth:`demo.Widget.spin`? [xref_check.not_found]",
        f"{index}:8: WARNING: py:func reference target not found: demo.Widget.spin; it is a "
        "method in inventory 'demo', not a function: use :meth:`demo.Widget.spin` "
        "[xref_check.wrong_role]",
        f"{index}:12: WARNING: std:ref reference target not found: demo-intr; did you mean "
        ":ref:`demo-intro`? [xref_check.not_found]",
        f"{index}:14: WARNING: py:meth reference target not found: "
        f"sphinx.application.Sphinx.add_config_value is in installed Sphinx {INSTALLED_SPHINX} "
        "but not in inventory 'sphinx' (Sphinx 1.0); link to the documentation of the "
        "installed version in intersphinx_mapping['sphinx'] [xref_check.version]",
        f"{index}:16: WARNING: py:meth reference sphinx.application.Sphinx.gone_method "
        "resolves in inventory 'sphinx' (Sphinx 1.0) but is gone from installed Sphinx "
        f"{INSTALLED_SPHINX} ('Sphinx' has no attribute 'gone_method'); link to the "
        "documentation of the installed version, or update the reference "
        "[xref_check.version]",
    ]


def test_nitpicky_gives_one_warning_per_reference(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _basic_app(make_app, tmp_path, nitpicky=True)
    app.build()
    lines = warning_lines(app)
    index = app.srcdir / "index.rst"
    # Sphinx's own "target not found" is replaced, not repeated ...
    assert not [line for line in lines if "[ref." in line and "demo" in line]
    # ... and references outside every inventory keep Sphinx's usual warning.
    assert (
        f"{index}:18: WARNING: py:class reference target not found: LocalThing [ref.class]" in lines
    )
    assert len([line for line in lines if "[xref_check." in line]) == 7


def test_scope_all_suggests_project_objects(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _basic_app(make_app, tmp_path, xref_check_scope="all", xref_check_import=False)
    app.build()
    index = app.srcdir / "index.rst"
    assert (
        f"{index}:18: WARNING: py:class reference target not found: LocalThing; did you mean "
        ":class:`LocalWidget`? [xref_check.not_found]"
    ) in warning_lines(app)


def test_json_report_and_stale_baseline(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _basic_app(make_app, tmp_path)
    app.build()
    report = json.loads((app.outdir / "xref_check.json").read_text())
    assert [(f["line"], f["role"], f["target"], f["cause"]) for f in report] == [
        (6, "py:meth", "demo.Widget.spinn", "not_found"),
        (8, "py:func", "demo.Widget.spin", "wrong_role"),
        (10, "py:meth", "demo.Widget.spim", "not_found"),
        (12, "std:ref", "demo-intr", "not_found"),
        (14, "py:meth", "sphinx.application.Sphinx.add_config_value", "version"),
        (16, "py:meth", "sphinx.application.Sphinx.gone_method", "version"),
    ]
    assert report[0] == {
        "file": "index.rst",
        "line": 6,
        "docname": "index",
        "role": "py:meth",
        "target": "demo.Widget.spinn",
        "cause": "not_found",
        "message": "py:meth reference target not found: demo.Widget.spinn; did you mean "
        ":meth:`demo.Widget.spin`?",
        "suggestions": [":meth:`demo.Widget.spin`"],
        "baselined": False,
    }


def test_baseline_silences_accepted_and_reports_stale(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _basic_app(
        make_app,
        tmp_path,
        baseline="# accepted\nindex py:meth demo.Widget.spinn\nindex py:func demo.gone\n",
    )
    app.build()
    lines = warning_lines(app)
    assert not [line for line in lines if "demo.Widget.spinn" in line]
    assert lines[-1] == (
        f"{app.srcdir / 'baseline.txt'}:3: WARNING: baseline entry 'index py:func demo.gone' "
        "no longer matches any reference; remove it [xref_check.stale_baseline]"
    )
    report = json.loads((app.outdir / "xref_check.json").read_text())
    assert [f["baselined"] for f in report if f["target"] == "demo.Widget.spinn"] == [True]


def test_inventory_unavailable_says_why_once_and_counts(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    srcdir = copy_root("xref-unavailable", tmp_path)
    broken = tmp_path / "inv" / "broken.inv"
    broken.parent.mkdir()
    broken.write_bytes(
        b"# Sphinx inventory version 2\n# Project: Broken\n# Version: 1.0\n"
        b"# The remainder of this file is compressed using zlib.\nnot zlib at all"
    )
    html = tmp_path / "inv" / "html.inv"
    html.write_bytes(b"<!DOCTYPE html>\n<html>Not found</html>\n")
    mapping = {
        "demo": ("https://demo.example/", str(tmp_path / "inv" / "missing.inv")),
        "broken": ("https://broken.example/", str(broken)),
        "html": ("https://html.example/", str(html)),
    }
    app = make_app("html", srcdir=srcdir, confoverrides={"intersphinx_mapping": mapping})
    app.build()
    ours = [line for line in warning_lines(app) if "[xref_check." in line]
    index = app.srcdir / "index.rst"
    assert ours == [
        f"WARNING: inventory 'broken' did not load, so references into it are neither "
        f"linked nor checked: {broken}: its compressed part is corrupt or truncated (zlib: "
        "Error -3 while decompressing data: incorrect header check). Fix: point "
        "intersphinx_mapping at a valid objects.inv, or download it again "
        "[xref_check.inventory_unavailable]",
        f"WARNING: inventory 'demo' did not load, so references into it are neither linked "
        f"nor checked: {tmp_path / 'inv' / 'missing.inv'} cannot be read (No such file or "
        "directory). Fix: point intersphinx_mapping at a valid objects.inv, or download it "
        "again [xref_check.inventory_unavailable]",
        f"WARNING: inventory 'html' did not load, so references into it are neither linked "
        f"nor checked: {html}: it is not a Sphinx inventory: its first line is "
        "'<!DOCTYPE html>' instead of '# Sphinx inventory version 2' (an HTML or error page "
        "saved as objects.inv?). Fix: point intersphinx_mapping at a valid objects.inv, or "
        "download it again [xref_check.inventory_unavailable]",
        "WARNING: 1 reference into inventory 'broken' was neither linked nor checked "
        "because it did not load: index.rst:6 [xref_check.inventory_unavailable]",
        "WARNING: 2 references into inventory 'demo' were neither linked nor checked because "
        "it did not load: index.rst:4, index.rst:4 [xref_check.inventory_unavailable]",
        # said even when nothing depends on it
        "WARNING: no reference of this build goes into inventory 'html', which did not load "
        "[xref_check.inventory_unavailable]",
    ]
    assert "Traceback" not in app.warning.getvalue()
    del index


def test_bad_config_is_an_error_and_the_build_fails_with_the_default(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _basic_app(make_app, tmp_path, xref_check_scope="everything")
    assert warning_lines(app)[0] == (
        "ERROR: invalid xref_check_scope = 'everything' (set with -D): expected \"external\" "
        "or \"all\"; this build runs with the default, 'external', and fails"
    )
    app.build()
    assert "[xref_check.not_found]" in app.warning.getvalue()
    assert app.statuscode == 1


def test_bad_config_in_conf_py_is_an_error_at_its_line(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    srcdir = copy_root("xref-basic", tmp_path)
    conf = srcdir / "conf.py"
    conf.write_text(conf.read_text() + 'xref_check_scope = "everything"\n')
    app = make_app("html", srcdir=srcdir)
    line = len(conf.read_text().splitlines())
    assert warning_lines(app) == [
        f"{conf}:{line}: ERROR: invalid xref_check_scope = 'everything': expected "
        "\"external\" or \"all\"; this build runs with the default, 'external', and fails"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "xref_check_baseline: cannot read {path} (No such file or directory); create "
               'it with "python -m sphinxext.xref_check baseline <outdir>/xref_check.json '
               '-o missing.txt" or unset xref_check_baseline'),
        ("index py:meth\n", "{path}:1: expected \"docname role target\" (three fields "
                              "separated by spaces), got 'index py:meth'"),
    ],
)
def test_unusable_baseline_is_an_error_and_the_build_fails_without_it(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, text: str | None, message: str
) -> None:
    if text is None:
        app = _basic_app(make_app, tmp_path, xref_check_baseline="missing.txt")
        path = app.srcdir / "missing.txt"
    else:
        app = _basic_app(make_app, tmp_path, baseline=text)
        path = app.srcdir / "baseline.txt"
    error = f"ERROR: {message.format(path=path)}; this build uses no baseline"
    assert warning_lines(app)[0] == error
    app.build()
    assert app.statuscode == 1


REAL = {
    "python": "/usr/share/doc/python3.11/html/objects.inv",
    "gevent": "/usr/share/doc/python-gevent-doc/html/objects.inv",
    "pymongo": "/usr/share/doc/python-pymongo-doc/html/objects.inv",
}


@pytest.mark.skipif(
    not all(Path(p).is_file() for p in REAL.values()),
    reason="Debian's python3.11-doc, python-gevent-doc and python-pymongo-doc are not installed",
)
def test_real_debian_inventories(make_app: Callable[..., SphinxTestApp], tmp_path: Path) -> None:
    srcdir = copy_root("xref-real", tmp_path)
    app = make_app("html", srcdir=srcdir, confoverrides={"nitpicky": True})
    app.build()
    index = app.srcdir / "index.rst"
    lines = [line for line in warning_lines(app) if "index.rst" in line]
    assert lines == [
        f"{index}:7: WARNING: py:meth reference target not found: gevent.hub.Hub.joinn; did "
        "you mean :meth:`gevent.hub.Hub.join`, :meth:`gevent.pool.Group.join` or "
        ":meth:`gevent.Greenlet.join`? [xref_check.not_found]",
        f"{index}:9: WARNING: py:func reference target not found: gevent.hub.Hub.join; it is "
        "a method in inventory 'gevent', not a function: use :meth:`gevent.hub.Hub.join` "
        "[xref_check.wrong_role]",
        f"{index}:11: WARNING: py:func reference target not found: os.path.joinpath; did you "
        "mean :func:`os.path.join`, :func:`os.path.commonpath` or :func:`os.path.normpath`? "
        "[xref_check.not_found]",
        f"{index}:13: WARNING: py:class reference target not found: "
        "pymongo.mongo_client.MongoClientt; did you mean "
        ":class:`pymongo.mongo_client.MongoClient`, "
        ":class:`pymongo.mongo_replica_set_client.MongoReplicaSetClient` or "
        ":data:`pymongo.MongoClient`? [xref_check.not_found]",
    ]
    html = (app.outdir / "index.html").read_text()
    assert "api/gevent.hub.html#gevent.hub.Hub.join" in html
    assert "examples/high_availability.html#health-monitoring" in html


def test_distribution_found_without_reading_every_installed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sphinxext.xref_check import _installed

    def read_all() -> dict[str, list[str]]:
        raise AssertionError("read the file list of every installed distribution")

    # Python's inventory: standard library modules, plus 'test' and '__main__',
    # which sys.stdlib_module_names leaves out.
    monkeypatch.setattr(_installed, "_packages_distributions", read_all)
    modules = ["__main__", "json", "os.path", "test.support"]
    found = _installed.find_distribution(
        inv_name="python", project="Python", modules=modules, configured=None
    )
    assert found is None
    # named after the distribution: found by name
    found = _installed.find_distribution(
        inv_name="sphinx", project="Sphinx", modules=["sphinx.application"], configured=None
    )
    assert found is not None
    assert found.name == "Sphinx"
    assert "sphinx" in found.top_levels


def test_distribution_found_by_its_modules() -> None:
    from sphinxext.xref_check._installed import find_distribution

    found = find_distribution(
        inv_name="sphinx-docs", project="", modules=["sphinx.application"], configured=None
    )
    assert found is not None
    assert found.name == "Sphinx"


def test_disabled_reftypes_are_not_taken_as_resolved(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _basic_app(make_app, tmp_path, intersphinx_disabled_reftypes=["py:class"])
    app.build()
    index = app.srcdir / "index.rst"
    lines = [line for line in warning_lines(app) if f"{index}:4:" in line]
    assert lines == [
        f"{index}:4: WARNING: py:class reference target not found: demo.Widget; did you "
        "mean :func:`demo.make_widget`? [xref_check.not_found]"
    ]


def test_inventory_data_of_every_supported_sphinx() -> None:
    from sphinxext.xref_check._compat import intersphinx_projects, inventory_project

    class Item:
        """The fields of Sphinx 8.2+'s ``_InventoryItem`` (tuple access deprecated)."""

        project_name = "Demo"
        project_version = "2.0"

    # Sphinx 7.4: (project, version, uri, display name) tuples
    assert inventory_project({"py:module": {"demo": ("Demo", "2.0", "u", "-")}}) == (
        "Demo",
        "2.0",
    )
    assert inventory_project({"py:module": {"demo": Item()}}) == ("Demo", "2.0")
    assert inventory_project({}) == ("", "")
    # Sphinx 7.x keeps a pre-1.0 entry with the name None and wraps a list of
    # locations in a tuple; 8.0+ gives every entry a name and a flat tuple.
    normalised_by_7 = {
        "https://old.example/": (None, ("https://old.example/", (None,))),
        "demo": ("demo", ("https://demo.example/", (["a.inv", None],))),
    }
    normalised_by_9 = {"demo": ("demo", ("https://demo.example/", ("a.inv", None)))}
    expected = {"demo": ("https://demo.example/", ("a.inv", None))}
    assert intersphinx_projects(normalised_by_7) == expected
    assert intersphinx_projects(normalised_by_9) == expected

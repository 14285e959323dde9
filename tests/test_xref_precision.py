"""Precision: silent where Sphinx is, the right cause, the right fix first, the right line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sphinx
from xref_fixtures import DEMO_ENTRIES, copy_root, warning_lines, write_inventory

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sphinx.testing.util import SphinxTestApp

#: A small inventory shaped like Python's, for the current Python (no version skew).
PYTHON_ENTRIES = [
    ("None", "py:data"),
    ("Ellipsis", "py:data"),
    ("str", "py:class"),
    ("os", "py:module"),
    ("os.SEEK_SET", "py:data"),
    ("os.path.join", "py:function"),
    ("socket", "py:module"),
    ("socket.socket", "py:class"),
    ("socket.socket.shutdown", "py:method"),
    ("socket.htonl", "py:function"),
    ("datetime", "py:module"),
    ("datetime.datetime", "py:class"),
    ("readline", "py:module"),
    ("io.IOBase.readline", "py:method"),
]
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def _precision_app(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, *, truncate: bool = False
) -> SphinxTestApp:
    srcdir = copy_root("xref-precision", tmp_path)
    demo = write_inventory(tmp_path / "inv" / "demo.inv", "Demo", "2.0", DEMO_ENTRIES)
    python = write_inventory(
        tmp_path / "inv" / "python.inv", "Python", PYTHON_VERSION, PYTHON_ENTRIES
    )
    if truncate:  # as a download cut short leaves it
        data = Path(python).read_bytes()
        Path(python).write_bytes(data[: len(data) - 20])
    mapping = {
        "demo": ("https://demo.example/", demo),
        "python": ("https://docs.python.org/3/", python),
    }
    return make_app(
        "html",
        srcdir=srcdir,
        confoverrides={"intersphinx_mapping": mapping, "nitpicky": True},
    )


@pytest.fixture
def forget_xprec() -> Iterator[None]:
    """The test roots' modules are imported by autodoc: forget them afterwards."""
    yield
    for name in [n for n in sys.modules if n == "xprec" or n.startswith("nsx")]:
        del sys.modules[name]


def _ours(app: SphinxTestApp) -> list[str]:
    return [line for line in warning_lines(app) if "[xref_check." in line]


@pytest.mark.usefixtures("forget_xprec")
def test_warnings_are_the_real_problems_with_the_fix_first(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _precision_app(make_app, tmp_path)
    app.build()
    module = app.srcdir / "xprec.py"
    index = app.srcdir / "index.rst"
    # None and tuple[int, ...] in the type hints, :class:`None` and :class:`str`, and what
    # nitpick_ignore and nitpick_ignore_regex list: Sphinx says nothing, and neither do we.
    assert _ours(app) == [
        # an instance attribute's #: comment, in __init__
        f"{module}:20: WARNING: py:func reference target not found: demo.make_widgett; did "
        "you mean :func:`demo.make_widget` or :class:`demo.Widget`? [xref_check.not_found]",
        f"{module}:9: WARNING: py:class reference target not found: demo.Widget; the target "
        "is split by whitespace (a line break?): use :class:`demo.Widget` "
        "[xref_check.not_found]",
        f"{module}:12: WARNING: py:meth reference target not found: demo.Widget.spinn; did "
        "you mean :meth:`demo.Widget.spin`? [xref_check.not_found]",
        f"{index}:11: WARNING: py:meth reference target not found: socket.shutdown; did you "
        "mean :meth:`socket.socket.shutdown` or :func:`socket.htonl`? [xref_check.not_found]",
        f"{index}:13: WARNING: py:attr reference target not found: os.SEEK_SET; it is a "
        "constant or variable in inventory 'python', not an attribute or a property: use "
        ":data:`os.SEEK_SET` [xref_check.wrong_role]",
        f"{index}:13: WARNING: py:const reference target not found: os.SEEK_SET; it is a "
        "constant or variable in inventory 'python', which :const: cannot link to in an "
        "inventory: use :data:`os.SEEK_SET` [xref_check.wrong_role]",
        # a bare name is no evidence of a module: no cause is guessed from it
        f"{index}:15: WARNING: py:class reference target not found: datetime; did you mean "
        ":class:`datetime.datetime` or :mod:`datetime`? [xref_check.not_found]",
        f"{index}:15: WARNING: py:meth reference target not found: readline; did you mean "
        ":meth:`io.IOBase.readline` or :mod:`readline`? [xref_check.not_found]",
    ]
    # the report has the .py file and its own line, never the docstring's
    report = json.loads((app.outdir / "xref_check.json").read_text())
    assert [(f["file"], f["line"], f["target"]) for f in report if f["file"] == "xprec.py"] == [
        ("xprec.py", 9, "demo.Widget"),
        ("xprec.py", 12, "demo.Widget.spinn"),
        ("xprec.py", 20, "demo.make_widgett"),
    ]


@pytest.mark.usefixtures("forget_xprec")
def test_a_truncated_inventory_is_summarised_with_every_reference_into_it(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path
) -> None:
    app = _precision_app(make_app, tmp_path, truncate=True)
    python = tmp_path / "inv" / "python.inv"
    app.build()
    lines = _ours(app)
    if sphinx.version_info < (8,):
        # Sphinx 7 links what it could read of the file: it is said, and the rest checked
        assert lines[0].startswith(
            f"WARNING: inventory 'python' loaded only in part, so references into what is "
            f"missing are reported as not found: {python}: its compressed part is corrupt "
            f"or truncated"
        )
        assert lines[0].endswith(
            "Fix: point intersphinx_mapping at a valid objects.inv, or download it again "
            "[xref_check.inventory_unavailable]"
        )
        assert not any("were neither linked nor checked" in line for line in lines)
        return
    assert lines[0].startswith(
        f"WARNING: inventory 'python' did not load, so references into it are neither linked "
        f"nor checked: {python}: its compressed part is corrupt or truncated"
    )
    # the standard library's and the builtins' references all depend on it
    assert lines[-1] == (
        "WARNING: 13 references into inventory 'python' were neither linked nor checked "
        "because it did not load: xprec.py:6, xprec.py:6, xprec.py:6, xprec.py:6, "
        "xprec.py:6, ... [xref_check.inventory_unavailable]"
    )


def _distribution(site: Path, name: str, version: str, files: dict[str, str]) -> None:
    for path, text in files.items():
        (site / path).parent.mkdir(parents=True, exist_ok=True)
        (site / path).write_text(text)
    info = site / f"{name.replace('.', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text("nsx\n")
    record = [f"{path},," for path in files] + [f"{info.name}/METADATA,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.mark.usefixtures("forget_xprec")
def test_version_only_from_the_distribution_that_installed_the_module(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two distributions share the namespace package ``nsx``; only ``nsx.alpha`` has
    an inventory, of an older version; an instance attribute is no attribute of the class."""
    site = tmp_path / "site"
    _distribution(site, "nsx.alpha", "2.0", {
        "nsx/alpha/__init__.py": (
            "class Thing:\n"
            "    def __init__(self):\n"
            "        self.filename = 'x'\n\n\n"
            "class New:\n"
            "    '''A new thing.\n\n    .. versionadded:: 2.0\n    '''\n"
        ),
    })
    _distribution(site, "nsx.beta", "1.0", {"nsx/beta/__init__.py": "class Other:\n    pass\n"})
    monkeypatch.syspath_prepend(str(site))
    srcdir = copy_root("xref-basic", tmp_path)
    (srcdir / "index.rst").write_text(
        "Namespace\n=========\n\n"
        "Set in __init__: :attr:`nsx.alpha.Thing.filename`.\n\n"
        "Gone: :attr:`nsx.alpha.Thing.gone`.\n\n"
        "Newer: :class:`nsx.alpha.New`.\n\n"
        "Another distribution: :class:`nsx.beta.Other`.\n"
    )
    inventory = write_inventory(tmp_path / "inv" / "nsalpha.inv", "nsx.alpha", "1.0", [
        ("nsx.alpha", "py:module"),
        ("nsx.alpha.Thing", "py:class"),
        ("nsx.alpha.Thing.filename", "py:attribute"),
        ("nsx.alpha.Thing.gone", "py:attribute"),
    ])
    app = make_app("html", srcdir=srcdir, confoverrides={
        "intersphinx_mapping": {"nsalpha": ("https://nsx.example/", inventory)},
        "xref_check_distributions": {"nsalpha": "nsx.alpha"},
        "suppress_warnings": ["xref_check.version_skew"],
    })
    app.build()
    index = app.srcdir / "index.rst"
    assert _ours(app) == [
        f"{index}:6: WARNING: py:attr reference nsx.alpha.Thing.gone resolves in inventory "
        "'nsalpha' (nsx.alpha 1.0) but is gone from installed nsx.alpha 2.0 ('Thing' has "
        "no attribute 'gone'); link to the documentation of the installed version, or "
        "update the reference [xref_check.version]",
        f"{index}:8: WARNING: py:class reference target not found: nsx.alpha.New is in "
        "installed nsx.alpha 2.0 but not in inventory 'nsalpha' (nsx.alpha 1.0); link to the "
        "documentation of the installed version in intersphinx_mapping['nsalpha'] "
        "[xref_check.version]",
        # installed by nsx.beta, which has no inventory: not a version problem
        f"{index}:10: WARNING: py:class reference target not found: nsx.beta.Other; nothing "
        "similar in this project or the inventories 'nsalpha' [xref_check.not_found]",
    ]


def test_exception_texts_are_short() -> None:
    from sphinxext.xref_check._installed import short
    from sphinxext.xref_check._load import _fetch_reason

    long = "HTTPSConnectionPool(host='x', port=443): " + "Max retries exceeded " * 40
    line = (
        "intersphinx inventory 'https://x.example/objects.inv' not fetchable due to "
        f"<class 'requests.exceptions.ConnectionError'>: {long}"
    )
    assert _fetch_reason(line, "https://x.example/objects.inv") == (
        "https://x.example/objects.inv could not be fetched (ConnectionError)"
    )
    assert len(short(RuntimeError(long))) <= 160

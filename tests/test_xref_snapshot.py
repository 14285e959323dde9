"""Snapshot round trip over a loopback HTTP server: take, build offline, detect damage."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import pytest
from sphinx.errors import ConfigError
from xref_fixtures import DEMO_ENTRIES, copy_root, serve, warning_lines, write_inventory

from sphinxext.xref_check._cli import main

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sphinx.testing.util import SphinxTestApp


def take_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *options: str
) -> tuple[Path, str]:
    """The xref-snapshot root with a snapshot of the demo inventory, taken from a
    loopback server that is gone when this returns: (srcdir, the server's URL)."""
    site = tmp_path / "site"
    write_inventory(site / "objects.inv", "Demo", "2.0", DEMO_ENTRIES)
    srcdir = copy_root("xref-snapshot", tmp_path)
    with serve(site) as url:
        monkeypatch.setenv("XREF_TEST_URL", url)
        assert main(["snapshot", "-c", str(srcdir), *options]) == 0
    return srcdir, url


def test_snapshot_round_trip(
    make_app: Callable[..., SphinxTestApp],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    srcdir, url = take_snapshot(tmp_path, monkeypatch)
    folder = srcdir / "_inventories"
    out = capsys.readouterr().out
    assert f"demo: Demo 2.0 from {url}/objects.inv" in out

    lock = json.loads((folder / "inventories.lock").read_text())["inventories"]
    data = (tmp_path / "site" / "objects.inv").read_bytes()
    assert [
        (e["name"], e["url"], e["project"], e["version"], e["sha256"], e["file"]) for e in lock
    ] == [
        ("demo", f"{url}/objects.inv", "Demo", "2.0", hashlib.sha256(data).hexdigest(), "demo.inv")
    ]
    assert lock[0]["fetched_at"]

    # the server is gone: the build says once that it uses the snapshot, and still checks
    app = make_app("html", srcdir=srcdir)
    app.build()
    index = app.srcdir / "index.rst"
    assert [line for line in warning_lines(app) if "[xref_check." in line] == [
        f"WARNING: inventory 'demo': {url}/objects.inv could not be reached; using the "
        f"snapshot {folder / 'demo.inv'} [xref_check.snapshot]",
        f"{index}:4: WARNING: py:class reference target not found: demo.Widgett; did you mean "
        ":class:`demo.Widget` or :func:`demo.make_widget`? [xref_check.not_found]",
    ]
    assert "index.html#demo.Widget" in (app.outdir / "index.html").read_text()


def test_snapshot_only_mode_needs_no_network(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # -o names the folder that conf.py reads by default
    folder = tmp_path / "xref-snapshot" / "_inventories"
    srcdir, _url = take_snapshot(tmp_path, monkeypatch, "-o", str(folder))
    app = make_app("html", srcdir=srcdir, confoverrides={"xref_check_snapshot_mode": "only"})
    app.build()
    assert [line for line in warning_lines(app) if "[xref_check." in line] == [
        f"{app.srcdir / 'index.rst'}:4: WARNING: py:class reference target not found: "
        "demo.Widgett; did you mean :class:`demo.Widget` or :func:`demo.make_widget`? "
        "[xref_check.not_found]",
    ]


def test_corrupted_snapshot_is_a_clear_error(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srcdir, _url = take_snapshot(tmp_path, monkeypatch)
    folder = srcdir / "_inventories"
    (folder / "demo.inv").write_bytes(b"tampered")
    with pytest.raises(ConfigError) as info:
        make_app("html", srcdir=srcdir)
    assert str(info.value) == (
        f"the inventory snapshot in {folder} does not match its lock file; take it again "
        f"with: python -m sphinxext.xref_check snapshot -c {srcdir} -o {folder}"
    )


def test_unreachable_url_fails_the_snapshot_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    srcdir = copy_root("xref-snapshot", tmp_path)
    with serve(tmp_path) as url:
        pass  # the port is closed again: nothing listens there
    monkeypatch.setenv("XREF_TEST_URL", url)
    assert main(["snapshot", "-c", str(srcdir), "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: demo: {url}/objects.inv could not be fetched (")


def test_baseline_command_writes_accepted_lines(tmp_path: Path) -> None:
    report = tmp_path / "xref_check.json"
    report.write_text(
        json.dumps([{"docname": "index", "role": "py:meth", "target": "demo.x", "line": 3}])
    )
    out = tmp_path / "baseline.txt"
    assert main(["baseline", str(report), "-o", str(out)]) == 0
    assert out.read_text() == (
        "# accepted cross-references: docname role target\nindex py:meth demo.x\n"
    )

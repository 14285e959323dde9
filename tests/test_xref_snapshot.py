"""Snapshot round trip over a loopback HTTP server: take, build offline, detect damage."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import pytest
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


@pytest.mark.parametrize("mode", ["fallback", "only"])
def test_corrupted_snapshot_is_a_clear_error(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """The damaged file is named with the command that takes the snapshot again;
    the build goes on (with "only", still without the network) and fails."""
    srcdir, url = take_snapshot(tmp_path, monkeypatch)
    folder = srcdir / "_inventories"
    (folder / "demo.inv").write_bytes(b"tampered")
    app = make_app("html", srcdir=srcdir, confoverrides={"xref_check_snapshot_mode": mode})
    app.build()
    lock = json.loads((folder / "inventories.lock").read_text())
    expected = lock["inventories"][0]["sha256"]
    lines = warning_lines(app)
    assert lines[:2] == [
        f"ERROR: xref_check_snapshot: {folder / 'demo.inv'} does not match "
        f"{folder / 'inventories.lock'}: expected sha256 {expected}, got "
        f"{hashlib.sha256(b'tampered').hexdigest()}",
        f"ERROR: xref_check_snapshot: the inventory snapshot in {folder} does not match its "
        f"lock file; take it again with: python -m sphinxext.xref_check snapshot -c {srcdir} "
        f"-o {folder}",
    ]
    # "fallback" tries the URL (gone with the server); "only" never reads the
    # damaged file, and never the network: the build goes on without the inventory.
    tried = (
        f"{url}/objects.inv could not be fetched ("
        if mode == "fallback"
        else f"{folder / 'demo.inv'} does not match {folder / 'inventories.lock'}"
    )
    did_not_load = [line for line in lines if "did not load" in line]
    assert did_not_load[0].startswith(
        "WARNING: inventory 'demo' did not load, so references into it are neither linked "
        f"nor checked: {tried}"
    )
    assert did_not_load[1:] == [
        "WARNING: 2 references into inventory 'demo' were neither linked nor checked because "
        "it did not load: index.rst:4, index.rst:4 [xref_check.inventory_unavailable]"
    ]
    assert "Traceback" not in app.warning.getvalue()
    assert app.statuscode == 1


def test_missing_lock_in_only_mode_still_needs_no_network(
    make_app: Callable[..., SphinxTestApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srcdir, url = take_snapshot(tmp_path, monkeypatch)
    folder = srcdir / "_inventories"
    (folder / "inventories.lock").unlink()
    with serve(tmp_path) as live:  # a server that would answer, were it asked
        app = make_app(
            "html", srcdir=srcdir,
            confoverrides={"xref_check_snapshot_mode": "only",
                           "intersphinx_mapping": {"demo": (live, None)}},
        )
        app.build()
    lines = warning_lines(app)
    assert lines[0] == (
        f"ERROR: xref_check_snapshot: no snapshot lock file at {folder / 'inventories.lock'} "
        f"(No such file or directory); create it with: python -m sphinxext.xref_check "
        f"snapshot -c {srcdir} -o {folder}"
    )
    # The inventory is read from where the snapshot keeps it, not fetched.
    assert not any(live in line for line in lines)
    assert app.statuscode == 1
    del url


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

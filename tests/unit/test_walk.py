"""Listing evidence folders: symbolic links refused by name, skipped folders not entered, a stable order."""

from __future__ import annotations

import os
from pathlib import Path

from agent.signing.sources import SKIP_DIRS, DirSource
from agent.signing.walk import SYMLINK_REFUSED, walk


def _touch(root: Path, *names: str) -> None:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b"x")


def test_files_in_path_order_links_refused_skipped_folders_unseen(tmp_path: Path) -> None:
    _touch(tmp_path, "a/x", "a.b/x", "a/b/y", "z", "staging/0.jpg", "items/orphans/q", "deep/log/r")
    (tmp_path / "link").symlink_to(tmp_path / "z")
    (tmp_path / "a" / "dirlink").symlink_to(tmp_path / "a.b")
    (tmp_path / "private").symlink_to("/etc")
    os.mkfifo(tmp_path / "fifo")
    files, refused = walk(str(tmp_path), SKIP_DIRS)
    assert [n for n, _ in files] == ["a/b/y", "a/x", "a.b/x", "z"]  # by path parts, as the vault sorts
    assert all(p == str(tmp_path / n) for n, p in files)
    assert refused == [("a/dirlink", SYMLINK_REFUSED), ("link", SYMLINK_REFUSED), ("private", SYMLINK_REFUSED)]


def test_a_source_reports_every_refused_link_and_reads_nothing_through_them(tmp_path: Path) -> None:
    _touch(tmp_path, "items/000000/000000000000.restart.rec")
    (tmp_path / "items" / "000000" / "000000000001.still.jpg").symlink_to("/etc/hostname")
    src = DirSource(tmp_path)
    assert src.refused == [("items/000000/000000000001.still.jpg", SYMLINK_REFUSED)]
    assert src.media_files() == []
    with src.open_media(str(tmp_path / "items" / "000000"), "000000000002.still.jpg") as fh:
        assert fh is None  # absent

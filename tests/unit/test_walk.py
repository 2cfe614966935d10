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


def test_media_digest_from_the_descriptor_matches_a_streamed_one(tmp_path: Path) -> None:
    import hashlib
    import io

    import pytest

    from agent.core.errors import VerificationError
    from agent.signing.sources import EvidenceSource
    from agent.signing.walk import digest_regular

    small, big = os.urandom(4096), os.urandom((1 << 20) * 2 + 7)  # one read; several 1 MiB reads
    for name, data in (("s", small), ("b", big), ("e", b"")):
        (tmp_path / name).write_bytes(data)
        assert digest_regular(str(tmp_path / name)) == (len(data), hashlib.sha256(data).hexdigest())
    (tmp_path / "link").symlink_to(tmp_path / "s")
    os.mkfifo(tmp_path / "fifo")  # opened non-blocking and refused by its fstat, never read
    with pytest.raises(VerificationError, match="symbolic link"):
        digest_regular(str(tmp_path / "link"))
    assert digest_regular(str(tmp_path / "fifo")) is None
    assert digest_regular(str(tmp_path / "missing")) is None
    assert digest_regular(str(tmp_path / "s" / "under-a-file")) is None

    class Streamed(EvidenceSource):  # the base class's streaming digest, used by zip sources
        def open_media(self, folder: str, name: str):  # type: ignore[no-untyped-def,override]
            from contextlib import nullcontext
            return nullcontext(io.BytesIO(big) if name == "b" else None)

    assert Streamed().media_digest("", "b") == (len(big), hashlib.sha256(big).hexdigest())
    assert Streamed().media_digest("", "x") is None

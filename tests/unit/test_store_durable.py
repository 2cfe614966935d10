"""Group durability: a batch's files are written, readable at once, and made durable in one flush."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.customs.store import durable
from agent.customs.store.durable import SyncBatch


@pytest.mark.parametrize("files", [3, 20])  # per-file fsyncs below SYNCFS_FROM, one syncfs from it
def test_flush_makes_a_batch_durable(tmp_path: Path, files: int) -> None:
    batch = SyncBatch()
    for i in range(files):
        batch.write(tmp_path / "items" / f"{i:03d}.rec", b"x" * i)
        assert (tmp_path / "items" / f"{i:03d}.rec").read_bytes() == b"x" * i  # readable within the batch
    moved = tmp_path / "moved.bin"
    (tmp_path / "items" / "000.rec").rename(moved)
    batch.moved(moved)
    batch.flush()
    expected = 1 if files >= durable.SYNCFS_FROM and durable._SYNCFS is not None else files + 2
    assert batch.fsyncs == expected
    assert list(tmp_path.rglob("*.tmp")) == [] and list(tmp_path.rglob(".*.in")) == []
    batch.flush()  # nothing pending: no-op
    assert batch.fsyncs == expected

"""A batch of many messages has no savepoint per message: a failure that is not a refusal rolls the whole
batch back (media it placed go back to their partial files) and flow control decides each message alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.customs.ingest import Ingest
from agent.customs.store.chain import Link
from tests.support.hostile import Device, chunk_msgs, record_msg, sidecar
from tests.support.ingest_path import deliver


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Ingest, Device, list[Any], bytes, int]:
    dev = Device(tmp_path / "dev", "cam-1")
    ingest = Ingest(tmp_path / "out")
    data = bytes(range(256)) * 12  # three chunks of 1 KiB: reassembled, then moved next to its record
    a, b = dev.still(data), dev.still(b"b" * 100)
    msgs = [record_msg(dev, sidecar(a)), *chunk_msgs(dev, a, data, chunk=1024), record_msg(dev, sidecar(b))]
    real = ingest._links.add

    def add(device: str, link: Link) -> list[str]:  # a bug met after the record's rows are written
        if link.seq == b.seq:
            raise RuntimeError("boom")
        return real(device, link)

    monkeypatch.setattr(ingest._links, "add", add)
    dev.close()
    return ingest, dev, msgs, data, b.seq


def test_failure_rolls_the_batch_back_and_puts_placed_media_back(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ingest, _dev, msgs, _data, _ = _setup(tmp_path, monkeypatch)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            ingest.handle_batch(msgs)
        assert ingest.report() == {}  # nothing of the batch is stored
        out = tmp_path / "out"
        assert not [f for f in (out / "cam-1" / "items").rglob("*") if f.is_file()]  # no media, no sidecar
        partial = list((out / ".ingest" / "partial" / "cam-1").iterdir())
        assert [p.stat().st_size for p in partial] == [3072]  # back where the chunk rows (rolled back) said
    finally:
        ingest.close()


def test_through_flow_control_each_message_is_then_decided_alone(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ingest, _dev, msgs, data, b_seq = _setup(tmp_path, monkeypatch)
    try:
        deliver(ingest, *msgs, batch=16)  # returns once every message is acknowledged
        rep = ingest.report()["cam-1"]
        assert rep.records == 1 and not rep.incomplete
        assert rep.refusals == {"internal_error": 1}
        placed = list((tmp_path / "out" / "cam-1" / "items").rglob("*.jpg"))
        assert len(placed) == 1 and placed[0].read_bytes() == data
        assert not list((tmp_path / "out" / "cam-1" / "items").rglob(f"{b_seq:012d}.*"))  # refused: no sidecar
    finally:
        ingest.close()

"""The agent's INFO line per sealed item kind per minute."""

from __future__ import annotations

import logging

import pytest

from agent.core.model import SealedItem
from agent.device.seal_log import SealLog


def _item(seq: int, kind: str) -> SealedItem:
    return SealedItem(seq=seq, kind=kind, record_hash="00" * 32, record={}, record_path=f"{seq}.rec",
                      media_path=None)


def test_one_line_per_kind_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    counter = SealLog(clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="agent.device.sealed")
    for seq, kind in enumerate(["restart", "still", "still", "segment", "still"]):
        counter.on_sealed(_item(seq, kind))
        now[0] += 5
    assert caplog.records == []  # within the minute: nothing yet
    now[0] = 61.0
    counter.on_sealed(_item(5, "still"))  # opens the next minute
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["sealed in the last 61 s: restart ×1 (seq 0)", "sealed in the last 61 s: segment ×1 (seq 3)",
                     "sealed in the last 61 s: still ×3 (seq 1–4)"]
    counter.flush()
    assert caplog.records[-1].getMessage() == "sealed in the last 0 s: still ×1 (seq 5)"

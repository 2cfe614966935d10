"""What `run` says at the end: counts of alarms and C2PA failures from the sealed items, plain drain lines."""

from __future__ import annotations

from typing import Any

from agent.core.model import SealedItem
from agent.device.summary import RunStats, drain_line, undelivered_lines
from agent.uplink.outbox_jobs import OutboxStats


def item(seq: int, kind: str, extra: dict[str, Any]) -> SealedItem:
    return SealedItem(seq=seq, kind=kind, record_hash=f"{seq:064x}", record={"extra": extra}, record_path="x",
                      media_path=None)


def test_alarms_and_c2pa_failures_are_counted_from_what_was_sealed() -> None:
    stats = RunStats()
    stats.count(item(0, "restart", {}))
    stats.count(item(1, "event", {"type": "frozen", "phase": "onset"}))
    stats.count(item(2, "event", {"type": "frozen", "phase": "end"}))
    stats.count(item(3, "tamper", {"state": "open"}))
    stats.count(item(4, "still", {"c2pa": {"error": "certificate lacks emailProtection"}}))
    stats.count(item(5, "segment", {"c2pa": {"manifest": "urn:c2pa:1"}}))
    assert stats.alarms == {"frozen": 1, "open": 1}
    assert stats.c2pa_failures == 1 and stats.last_c2pa_error == "certificate lacks emailProtection"
    assert stats.sealed["event"] == 2


def test_drain_lines_are_sentences_not_reprs() -> None:
    done = OutboxStats(pending=0, pending_bytes=0, rejected=0, in_flight=0, delivered=40, oldest_age_s=None,
                       last_sealed=None)
    assert drain_line(True, done) == "uplink: all delivered (40 messages acknowledged by the broker)"
    left = OutboxStats(pending=12, pending_bytes=3_400_000, rejected=2, in_flight=1, delivered=5, oldest_age_s=3.0,
                       last_sealed=None)
    line = drain_line(False, left)
    assert line.startswith("uplink: NOT all delivered: 12 pending (3.4 MB), 1 in flight; 2 rejected by the broker")
    assert "requeue" in line and "OutboxStats" not in line


def test_the_summary_advises_requeue_only_for_rejected_items() -> None:
    pending = OutboxStats(pending=3, pending_bytes=1000, rejected=0, in_flight=0, delivered=5, oldest_age_s=1.0,
                          last_sealed=None)
    (line,) = undelivered_lines(pending, "connection refused")
    assert "3 pending" in line and "nothing to do" in line and "requeue" not in line
    rejected = OutboxStats(pending=0, pending_bytes=0, rejected=2, in_flight=0, delivered=5, oldest_age_s=None,
                           last_sealed=None)
    (line,) = undelivered_lines(rejected, None)
    assert "2 refused by the broker" in line and "requeue --config FILE --list" in line

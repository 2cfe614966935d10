"""The ingest's ALERT line names the event, and echoes only short plain words from the wire."""

from __future__ import annotations

import json

from agent.customs.guard import alert_summary


def sidecar(extra: object) -> bytes:
    return json.dumps({"kind": "event", "extra": extra}).encode() + b"\n{}"


def test_names_the_event_and_phase() -> None:
    assert alert_summary(sidecar({"type": "frozen", "phase": "onset"})) == "frozen onset"
    assert alert_summary(sidecar({"state": "open"})) == "open"


def test_wire_text_is_not_echoed() -> None:
    assert alert_summary(sidecar({"type": "x\x1b[2J" * 20, "phase": "onset"})) == "? onset"
    assert alert_summary(b"\xff\xfe not json") == "(unreadable alert payload)"
    assert alert_summary(sidecar({})) == "(no event type)"

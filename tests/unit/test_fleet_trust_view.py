"""The console's fleet view flags devices on an older officer trust version than the rest of the fleet."""

from __future__ import annotations

import json

from agent.customs.console.fleet_state import FleetTracker, mark_old_trust
from agent.wire.messages import Inbound


def _status(fleet: FleetTracker, device: str, trust: object) -> None:
    doc = {"device": device, "time": "2026-12-07T10:00:00Z", "trust": trust}
    fleet.handle(Inbound(f"evidence/site-1/{device}/status", json.dumps(doc).encode(), 1, True))


def test_an_old_trust_version_is_flagged_and_wire_values_are_bounded() -> None:
    fleet = FleetTracker(None)
    _status(fleet, "cam-1", {"version": 1765100000, "last_refusal": None})
    _status(fleet, "cam-2", {"version": 1765100042, "last_refusal": "x" * 5000})
    _status(fleet, "cam-3", {"version": "1; DROP", "last_refusal": None})
    _status(fleet, "cam-4", "not an object")
    by = {d["device"]: d for d in mark_old_trust(fleet.devices())}
    assert by["cam-1"]["trust"] == {"version": 1765100000, "last_refusal": None, "old": True}
    assert by["cam-2"]["trust"]["old"] is False and len(by["cam-2"]["trust"]["last_refusal"]) == 200
    assert by["cam-3"]["trust"] == {"version": None, "last_refusal": None, "old": False}
    assert by["cam-4"]["trust"] is None


def test_upcoming_inspections_from_a_status_are_bounded_copies() -> None:
    fleet = FleetTracker(None)
    upcoming = [{"case": "C-1", "scheduled": "2026-12-10T01:00:00Z", "enterprise": "E" * 500, "seq": 12,
                 "extra": "<script>"},
                {"case": 7, "scheduled": "2026-12-10T01:00:00Z"}, "junk",
                {"case": "C-2", "scheduled": "x" * 100, "seq": True}] + \
        [{"case": f"C-{i}", "scheduled": "2026-12-11T01:00:00Z"} for i in range(100)]
    doc = {"device": "cam-1", "time": "2026-12-07T10:00:00Z", "upcoming_inspections": upcoming}
    fleet.handle(Inbound("evidence/site-1/cam-1/status", json.dumps(doc).encode(), 1, True))
    got = fleet.devices()[0]["upcoming"]
    assert got[0] == {"case": "C-1", "scheduled": "2026-12-10T01:00:00Z", "enterprise": "E" * 200, "seq": 12}
    assert got[1] == {"case": "C-2", "scheduled": "x" * 40, "enterprise": None, "seq": None}
    assert len(got) <= 32
    doc["upcoming_inspections"] = "not a list"
    fleet.handle(Inbound("evidence/site-1/cam-1/status", json.dumps(doc).encode(), 1, True))
    assert fleet.devices()[0]["upcoming"] == []

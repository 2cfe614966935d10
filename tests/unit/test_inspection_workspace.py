"""The one inspection screen's API: stills served by case and seq only, alerts with their end and duration, and
a report asked for before the end is a 409 that says why (a user's mistake is never a 5xx)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.core.clock import ManualClock
from agent.customs.console.deps import get_client, get_evidence, get_inspections
from agent.customs.inspection import evidence as ev
from agent.customs.inspection.model import Inspection, InspectionStore
from agent.customs.inspection.web import router
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity
from tests.support.console_app import console_client
from tests.support.helpers import moment
from tests.unit.test_inspection_report import SQUARE, jpeg_bytes

CASE = "C-7/1"


class Officer:
    officer_id = "officer-alice"


class NoDevice:
    officer = Officer()

    def request(self, *args: Any, **kw: Any) -> dict[str, Any]:
        raise AssertionError("no command may reach the device")


@pytest.fixture
def case(tmp_path: Path, identity: DeviceIdentity, manual_clock: ManualClock) -> dict[str, Any]:
    vault = Vault(tmp_path / "received" / "test-device")
    sealer = Sealer(vault, identity, device_id="test-device", site_id="s-1")
    sealer.start(moment(manual_clock))
    before = sealer.seal("still", moment(manual_clock), media=jpeg_bytes(), media_type="image/jpeg", ext="jpg")
    start = sealer.seal("inspection_start", moment(manual_clock), extra={"case": CASE})
    still = sealer.seal("still", moment(manual_clock), media=jpeg_bytes(), media_type="image/jpeg", ext="jpg",
                        extra={"label": "identity_document"})
    manual_clock.advance(2)
    sealer.seal("event", moment(manual_clock), extra={"type": "too_dark", "phase": "onset"})
    manual_clock.advance(7.5)
    sealer.seal("event", moment(manual_clock), extra={"type": "too_dark", "phase": "end"})
    sealer.seal("event", moment(manual_clock), extra={"type": "frozen", "phase": "onset"})
    event = sealer.seal("mark", moment(manual_clock), extra={"note": "n"})
    vault.close()
    store = InspectionStore(tmp_path / "data")
    store.create(Inspection(case=CASE, enterprise="E", device="test-device", site="s-1", polygon=SQUARE,
                            state="started", started_at="2026-01-01T00:00:00Z", start_seq=start.seq))
    client = console_client({get_inspections: store, get_client: NoDevice(), get_evidence: tmp_path / "received"},
                            (router,))
    return {"client": client, "still": still.seq, "before": before.seq, "mark": event.seq, "root": tmp_path}


def test_alerts_carry_onset_end_and_duration(case: dict[str, Any]) -> None:
    items = ev.load_items(case["root"] / "received" / "test-device", 1)
    dark, frozen = ev.alerts(items)
    assert dark["type"] == "too_dark" and dark["duration_s"] == 7.5 and not dark["ongoing"]
    assert dark["end_seq"] == dark["seq"] + 1 and dark["end_at"] > dark["at"]
    assert frozen["type"] == "frozen" and frozen["ongoing"] and frozen["end_at"] is None


def test_a_still_is_served_by_case_and_seq_with_its_own_type(case: dict[str, Any]) -> None:
    client: TestClient = case["client"]
    r = client.get("/api/inspection/still", params={"case": CASE, "seq": case["still"]})
    assert r.status_code == 200 and r.content == jpeg_bytes()
    assert r.headers["content-type"] == "image/jpeg" and r.headers["x-content-type-options"] == "nosniff"
    info = client.get("/api/inspection", params={"case": CASE}).json()
    assert [s["seq"] for s in info["stills"]] == [case["still"]]
    assert info["stills"][0]["label"] == "identity_document"


@pytest.mark.parametrize("seq", ["before", "mark", 999, -1, "../../etc/passwd", "1.jpg"])
def test_a_still_outside_the_case_or_not_a_still_is_refused(case: dict[str, Any], seq: Any) -> None:
    value = case.get(seq, seq) if isinstance(seq, str) else seq
    r = case["client"].get("/api/inspection/still", params={"case": CASE, "seq": value})
    assert r.status_code in (404, 422), r.text
    assert "image" not in r.headers.get("content-type", "")


def test_a_report_before_the_end_is_a_409_naming_the_state(case: dict[str, Any]) -> None:
    r = case["client"].post("/api/inspection/report", params={"case": CASE}, json={})
    assert r.status_code == 409 and "started" in r.json()["detail"] and "end" in r.json()["detail"]


def test_the_search_detail_picture_needs_device_seq_and_the_record_hash(case: dict[str, Any]) -> None:
    from agent.customs.console import stills

    client = console_client({get_evidence: case["root"] / "received"}, (stills.router,))
    items = {it.seq: it for it in ev.load_items(case["root"] / "received" / "test-device", 1)}
    still = items[case["still"]]
    ok = client.get(f"/api/still/test-device/{still.seq}", params={"item": still.record_hash})
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg" and ok.content == jpeg_bytes()
    mark = items[case["mark"]]
    for path, item in ((f"/api/still/test-device/{still.seq}", "0" * 64),  # another record's hash
                       (f"/api/still/test-device/{mark.seq}", mark.record_hash),  # not a still
                       ("/api/still/..%2Ftest-device/2", still.record_hash), ("/api/still/test-device/x", "a" * 64),
                       (f"/api/still/test-device/{still.seq}", "../../etc/passwd")):
        r = client.get(path, params={"item": item})
        assert r.status_code in (404, 422), (path, r.status_code)


def test_a_rebuild_without_a_reason_is_a_409_that_asks_for_it(case: dict[str, Any]) -> None:
    store = InspectionStore(case["root"] / "data")
    insp = store.load(CASE)
    insp.state, insp.end_seq = "reported", case["mark"]
    insp.report = {"manifest_sha256": "a" * 64, "sealed_seq": 99, "version": 1, "bundle": "x-v1-bundle.zip"}
    store.save(insp)
    for body in ({}, {"reason": "  "}):
        r = case["client"].post("/api/inspection/report", params={"case": CASE}, json=body)
        assert r.status_code == 409, r.text  # NoDevice: nothing was sent to the device
        assert "already has signed report v1" in r.json()["detail"] and "the reason field" in r.json()["detail"]
    r = case["client"].post("/api/inspection/report", params={"case": CASE}, json={"reason": "x" * 501})
    assert r.status_code == 422

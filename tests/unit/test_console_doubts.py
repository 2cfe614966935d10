"""Doubtful conditions are never a green tick: the live badge's checks name a simulated receiver and an
unsynchronised clock, and a self-test that passed with warnings is recorded as such."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.customs.console.live import FragmentChecker, checks_of
from agent.customs.inspection.model import Inspection, InspectionStore
from agent.customs.inspection.service import InspectionService
from tests.unit.test_console_badges import DEVICE, NONCE, SESSION, P384Signer, fragment
from tests.unit.test_inspection_report import SQUARE


def test_the_badge_names_a_simulated_receiver_and_an_unsynced_clock() -> None:
    signer = P384Signer()
    c = FragmentChecker(DEVICE, SESSION, NONCE, signer.key.public_key(), max_age_s=5, max_skew_s=2)
    now = time.time_ns() // 1000
    c.check(fragment(signer, 0, now, kind="init", data=b"init"), now)
    _verdict, h, _data = c.check(fragment(signer, 1, now, data=b"x"), now)
    assert c.checked is not None
    real = {**h, "gps": {"fix": "3d", "lat": 31.2, "lon": 121.4, "talker": "GN"},
            "time": {"source": "gps", "synced": True}}
    assert checks_of(real, now, "chain", c.checked)["doubts"] == []
    doubtful = {**h, "gps": {"fix": "3d", "lat": 31.2, "lon": 121.4, "talker": "sim"},
                "time": {"source": "unsynced", "synced": False}}
    doubts = checks_of(doubtful, now, "chain", c.checked)["doubts"]
    assert any("SIMULATED" in d for d in doubts) and any("clock NOT" in d for d in doubts)


class SelfTestDevice:
    def request(self, site: str, device: str, command: str, args: dict[str, Any] | None = None, *,
                nonce: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        assert command == "selftest"
        return {"result": {"passed": True, "sealed": {"seq": 4, "record_hash": "h"}, "checks": [
            {"name": "camera", "status": "pass"}, {"name": "gps", "status": "warn", "detail": "SIMULATED receiver"},
            {"name": "clock", "status": "warn", "detail": "not synchronised"}]}}


def test_a_self_test_with_warnings_is_not_a_plain_pass(tmp_path: Path) -> None:
    store = InspectionStore(tmp_path)
    store.create(Inspection(case="C-1", enterprise="E", device="d-1", site="s-1", polygon=SQUARE))
    entry = InspectionService(store, "C-1", SelfTestDevice()).readiness()
    assert entry.ok and entry.note == "self-test passed with warnings: gps, clock"
    assert store.load("C-1").readiness["warnings"] == ["gps", "clock"]  # type: ignore[index]

"""The inspections API refuses bad input with a status and a reason, and never touches a path a request names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.core.errors import UplinkError
from agent.customs.console.deps import get_client, get_evidence, get_inspections
from agent.customs.inspection.model import InspectionStore
from agent.customs.inspection.web import router
from tests.support.console_app import console_client

POLY = "31.0,121.0;31.0,121.01;31.01,121.01"


class Officer:
    officer_id = "officer-alice"


class DeadClient:
    """A broker that never answers."""

    officer = Officer()

    def request(self, *args: Any, **kw: Any) -> dict[str, Any]:
        raise UplinkError("no reply from dev-1 to selftest within 15 s")


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return console_client({get_inspections: InspectionStore(tmp_path / "data"), get_client: DeadClient(),
                           get_evidence: tmp_path / "received"}, (router,))


def test_open_list_and_refusals(client: TestClient, tmp_path: Path) -> None:
    body = {"case": "C-1/2026", "enterprise": "E", "device": "dev-1", "site": "s-1", "polygon": POLY}
    assert client.post("/api/inspections", json=body).status_code == 200
    assert client.post("/api/inspections", json=body).status_code == 409  # exists
    assert [r["case"] for r in client.get("/api/inspections").json()] == ["C-1/2026"]
    got = client.get("/api/inspection", params={"case": "C-1/2026"}).json()
    assert got["inspection"]["state"] == "open" and got["alerts"] == [] and got["site_map"].startswith("<svg")
    for bad in ({**body, "case": "../../etc/passwd"}, {**body, "device": "a/b"}, {**body, "polygon": "1,2;3,4"},
                {**body, "extra": 1}):
        r = client.post("/api/inspections", json=bad)
        assert r.status_code == 422, bad
    assert client.get("/api/inspection", params={"case": "../x"}).status_code == 422
    assert client.get("/api/inspection", params={"case": "C-404"}).status_code == 404
    assert client.post("/api/inspection/ready", params={"case": "C-1/2026"}, json={}).status_code == 502
    assert client.post("/api/inspection/checkin", params={"case": "C-1/2026"}, json={}).status_code == 422
    assert client.post("/api/inspection/checkin", params={"case": "C-1/2026"},
                       json={"step": "passport"}).status_code == 422  # not a check-in step
    assert client.post("/api/inspection/mark", params={"case": "C-1/2026"}, json={"note": ""}).status_code == 422
    assert client.post("/api/inspection/decision", params={"case": "C-1/2026"},
                       json={"decision": "continue"}).status_code == 422  # a decision needs its reason
    assert client.post("/api/inspection/format-disk", params={"case": "C-1/2026"}, json={}).status_code in (404, 405)
    assert client.post("/api/inspection/start", params={"case": "C-1/2026"}, json={"x": 1}).status_code == 422
    out_of_order = client.post("/api/inspection/end", params={"case": "C-1/2026"}, json={})
    assert out_of_order.status_code == 409 and "open" in out_of_order.json()["detail"]
    assert client.get("/api/inspection/report/report.pdf", params={"case": "C-1/2026"}).status_code == 404
    assert client.get("/api/inspection/report/..%2Fsecret", params={"case": "C-1/2026"}).status_code in (404, 422)
    assert client.get("/inspections").status_code == 200
    assert not list((tmp_path / "data").rglob("passwd*"))


def test_without_inspections_configured_every_route_says_which_setting() -> None:
    client = console_client({get_client: DeadClient()}, (router,))  # the real providers for the rest
    for r in (client.get("/api/inspections"), client.get("/api/inspection", params={"case": "C-1"}),
              client.post("/api/inspection/mark", params={"case": "C-1"}, json={"note": "n"})):
        assert r.status_code == 503 and "[inspections] data" in r.json()["detail"]


class NoticeClient:
    """A device that seals the advance notice and answers with its seq."""

    officer = Officer()

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def request(self, site: str, device: str, command: str, args: dict[str, Any] | None = None,
                **kw: Any) -> dict[str, Any]:
        self.sent.append((command, dict(args or {})))
        return {"ok": True, "result": {"seq": 7, "record_hash": "ab" * 32, "scheduled": (args or {})["scheduled"]}}


def test_opening_with_a_schedule_sends_the_notice_and_keeps_its_delivery(tmp_path: Path) -> None:
    import datetime as dt

    body = {"case": "C-9", "enterprise": "E", "device": "dev-1", "site": "s-1", "polygon": POLY}
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat(timespec="seconds")
    dead = console_client({get_inspections: InspectionStore(tmp_path / "d1"), get_client: DeadClient(),
                           get_evidence: None}, (router,))
    r = dead.post("/api/inspections", json={**body, "scheduled": soon})
    assert r.status_code == 200 and r.json()["notice"]["delivered"] is False, r.text
    assert "no reply" in r.json()["notice"]["error"]
    got = dead.get("/api/inspection", params={"case": "C-9"}).json()["inspection"]
    assert got["entries"][0]["kind"] == "notice" and got["entries"][0]["ok"] is False
    device = NoticeClient()
    live = console_client({get_inspections: InspectionStore(tmp_path / "d2"), get_client: device,
                           get_evidence: None}, (router,))
    for bad, words in (("2020-01-01T00:00:00Z", "in the past"), ("2026-12-10T09:00:00", "UTC offset"),
                       ((dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).isoformat(), "365 days"),
                       ("x" * 41, "at most 40")):
        r = live.post("/api/inspections", json={**body, "scheduled": bad})
        assert r.status_code == 422 and words in r.text, r.text
    assert device.sent == []
    r = live.post("/api/inspections", json={**body, "scheduled": soon})
    assert r.json()["notice"]["delivered"] is True and r.json()["notice"]["seq"] == 7
    command, args = device.sent[0]
    assert command == "inspection.notice" and args["site"] == "s-1" and args["scheduled"].endswith("Z")
    assert live.post("/api/inspection/notice", params={"case": "C-9"}, json={}).status_code == 200


def test_several_devices_open_and_device_steps_refuse_a_device_not_of_the_case(client: TestClient) -> None:
    body = {"case": "C-2/2026", "enterprise": "E", "device": "cam-yard, cam-store", "site": "s-1", "polygon": POLY}
    assert client.post("/api/inspections", json=body).status_code == 200
    got = client.get("/api/inspection", params={"case": "C-2/2026"}).json()["inspection"]
    assert got["devices"] == ["cam-yard", "cam-store"] and got["device"] == "cam-yard"
    listed = client.get("/api/inspections").json()[0]
    assert listed["devices"] == ["cam-yard", "cam-store"]
    for devices, why in (("a,a", "named twice"), (",".join(f"c{n}" for n in range(9)), "1 to 8"),
                         ("a,b/c", "not a device id"), ("a,<b>", "not a device id")):
        r = client.post("/api/inspections", json={**body, "case": "C-3/2026", "device": devices})
        assert r.status_code == 422 and why in r.json()["detail"], (devices, r.text)
    q = {"case": "C-2/2026"}
    r = client.post("/api/inspection/ready", params=q, json={"device": "cam-other"})
    assert r.status_code == 422 and "not one of" in r.json()["detail"]  # refused before anything is sent
    assert client.post("/api/inspection/mark", params=q, json={"note": "n", "device": "../x"}).status_code == 422
    assert client.post("/api/inspection/ready", params=q, json={"device": "cam-store"}).status_code == 502  # sent
    assert client.get("/api/inspection/still", params={**q, "seq": 1, "device": "cam-other"}).status_code in (
        404, 503)

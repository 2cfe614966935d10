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

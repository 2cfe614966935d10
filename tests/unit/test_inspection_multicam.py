"""A two-camera case as the officer sees it: the merged timeline, alerts and stills naming their device, and
the report's per-device runs (agent/customs/inspection: model, service, html, report)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from agent.customs.inspection.report import build_report
from tests.support.multicam import STORE, YARD, run_case, two_cameras


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("multicam-unit")
    two = two_cameras(root)
    service = run_case(two)
    result = build_report(service, two.evidence, root / "out", two.officer, wait_s=0, lang="en")
    yield {"two": two, "service": service, "result": result}
    two.close()


def test_timeline_merges_devices_in_capture_order_and_alerts_name_their_device(built: dict[str, Any]) -> None:
    service, two = built["service"], built["two"]
    items = service.items(two.evidence)
    assert {it.device for it in items} == {YARD, STORE}
    walls = [it.wall_us for it in items]
    assert walls == sorted(walls)
    alerts = service.alerts(two.evidence)
    assert [(a["device"], a["type"]) for a in alerts] == [(STORE, "too_dark")]
    stills = {(s["device"], s["step"]) for s in service.stills(items)}
    assert (YARD, "checkin") in stills and (STORE, "checkin") in stills and (STORE, "snapshot") in stills
    insp = service.inspection
    assert set(insp.runs) == {YARD, STORE} and all(r["end_seq"] is not None for r in insp.runs.values())
    assert {e.device for e in insp.entries if e.kind in ("start", "end")} == {YARD, STORE}


def test_report_lists_each_devices_run_and_labels_the_timeline(built: dict[str, Any]) -> None:
    result, insp = built["result"], built["service"].inspection
    assert result.verify["ok"], result.verify["problems"]
    html = result.html.read_text()
    assert "signed run" in html and html.count("VERIFIED") >= 3  # overall and one per device
    for device in (YARD, STORE):
        first, last = insp.run_of(device)
        assert f"seq {first}..{last}" in html
        assert f"{device} · " in html  # timeline rows and annex name their device
    with zipfile.ZipFile(result.bundle) as z:
        top = json.loads(z.read("MANIFEST.json"))
        body = json.loads(z.read("report/manifest.json"))["body"]
    assert top["format"] == "evidence-bundle/2" and [d["device_id"] for d in top["devices"]] == [YARD, STORE]
    assert body["typ"] == "evidence-report/3" and [d["device_id"] for d in body["devices"]] == [YARD, STORE]
    for d in body["devices"]:
        assert d["range"]["count"] == len(d["items"])

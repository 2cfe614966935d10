"""The signed report in a bundle (agent/signing/report.py), the site check, and sessions that survive a restart."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.clock import ManualClock
from agent.core.errors import ConfigError
from agent.customs.inspection.geo import check_fix, contains, parse_polygon, site_map_svg
from agent.customs.inspection.model import Entry, Inspection, InspectionStore
from agent.customs.inspection.report import build_report
from agent.customs.inspection.service import InspectionService
from agent.customs.keys import init_officer
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity
from agent.signing.report import REPORT_TYP, report_checker, sign_report
from agent.signing.verify import check
from tests.support.helpers import moment

SQUARE = [(31.0, 121.0), (31.0, 121.01), (31.01, 121.01), (31.01, 121.0)]
CASE = "C-9/1"


def test_point_in_polygon_and_fix_quality() -> None:
    assert contains(SQUARE, (31.005, 121.005)) and not contains(SQUARE, (31.02, 121.005))
    inside = check_fix(SQUARE, {"fix": "3d", "lat": 31.005, "lon": 121.005, "hdop": 0.9, "satellites": 9,
                                "age_s": 0.2})
    assert inside.inside and inside.quality == "good" and inside.distance_m is not None and inside.distance_m < 0
    outside = check_fix(SQUARE, {"fix": "2d", "lat": 31.02, "lon": 121.005, "hdop": 6.0, "satellites": 4})
    assert outside.inside is False and outside.quality == "poor" and 1000 < (outside.distance_m or 0) < 1200
    none = check_fix(SQUARE, {"fix": "none", "status": "no fix"})
    assert none.inside is None and none.quality == "no fix"
    edge = check_fix(SQUARE, {"fix": "3d", "lat": 31.00002, "lon": 121.005, "hdop": 1.0})
    assert any("boundary" in r for r in edge.reasons)
    svg = site_map_svg(SQUARE, [(31.005, 121.005), (31.02, 121.005)], [((31.02, 121.005), "re-check <1>")])
    assert svg.startswith("<svg") and "re-check &lt;1&gt;" in svg and "polyline" in svg


@pytest.mark.parametrize("text", ["31,121;31,122", "31,121;x,122;1,1", "31,121;91,1;1,1", "nan,1;1,1;2,2"])
def test_bad_polygons_are_named(text: str) -> None:
    with pytest.raises(ValueError):
        parse_polygon(text)


def test_session_survives_a_restart_and_damage_is_one_line(tmp_path: Path) -> None:
    store = InspectionStore(tmp_path)
    insp = store.create(Inspection(case=CASE, enterprise="E", device="dev-1", site="s-1", polygon=SQUARE))
    insp.entries.append(Entry(at="2026-01-01T00:00:00Z", kind="mark", seq=3, note="n"))
    store.save(insp)
    again = InspectionStore(tmp_path).load(CASE)
    assert again.entries[0].seq == 3 and again.polygon[0] == SQUARE[0]
    with pytest.raises(ConfigError, match="already exists"):
        store.create(insp)
    store.path(CASE).write_text(json.dumps({**json.loads(store.path(CASE).read_text()), "planned_minutes": -1}))
    with pytest.raises(ConfigError, match="planned_minutes"):
        store.load(CASE)
    with pytest.raises(ValueError):
        Inspection(case="../x", enterprise="E", device="d", site="s", polygon=SQUARE)


class FakeDevice:
    """Stands in for the broker + device for the report's seal step: seals with the real sealer."""

    def __init__(self, sealer: Sealer, clock: ManualClock) -> None:
        self.sealer, self.clock = sealer, clock

    def request(self, site: str, device: str, command: str, args: dict[str, Any] | None = None, *,
                nonce: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        assert command == "inspection.report" and args is not None
        item = self.sealer.seal("report", moment(self.clock), extra=dict(args))
        return {"ok": True, "result": {"seq": item.seq, "record_hash": item.record_hash}}


def jpeg_bytes(size: tuple[int, int] = (64, 48), text: str | None = None) -> bytes:
    """A real JPEG, so the thumbnail path runs (``text``: drawn large, like a document's lines)."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (200, 60, 40) if text is None else (245, 245, 235))
    if text is not None:
        draw = ImageDraw.Draw(img)
        for n in range(0, size[1] - 60, 60):
            draw.text((40, 30 + n), f"{text} line {n // 60}", fill=(0, 0, 0), font_size=40)
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def reported(tmp_path: Path, identity: DeviceIdentity, manual_clock: ManualClock) -> Iterator[dict[str, Any]]:
    """A device vault (laid out like the ingest output) with an ended inspection, and its built report."""
    vault = Vault(tmp_path / "evidence" / "test-device")
    sealer = Sealer(vault, identity, device_id="test-device", site_id="s-1")
    sealer.start(moment(manual_clock))
    start = sealer.seal("inspection_start", moment(manual_clock), extra={"case": CASE})
    for label, media in (("location", jpeg_bytes()),
                         ("identity_document", jpeg_bytes((2400, 3400), "PASSPORT No. E12345678"))):
        manual_clock.advance(1)
        sealer.seal("still", moment(manual_clock), media=media, media_type="image/jpeg", ext="jpg",
                    extra={"label": label})
    sealer.seal("event", moment(manual_clock), extra={"type": "too_dark", "phase": "onset"})
    end = sealer.seal("inspection_end", moment(manual_clock), extra={"case": CASE})
    store = InspectionStore(tmp_path / "console")
    insp = Inspection(case=CASE, enterprise="E", device="test-device", site="s-1", polygon=SQUARE, state="ended",
                      started_at="2026-01-01T00:00:00Z", ended_at="2026-01-01T00:25:00Z", start_seq=start.seq,
                      end_seq=end.seq)
    insp.checkin["location"] = Entry(at="2026-01-01T00:01:00Z", kind="checkin", label="location", seq=2, ok=True,
                                     details={"gps": {"fix": "3d", "lat": 31.005, "lon": 121.005}})
    insp.checkin["identity_document"] = Entry(at="2026-01-01T00:02:00Z", kind="checkin",
                                              label="identity_document", seq=3, ok=True)
    insp.entries.append(Entry(at="2026-01-01T00:20:00Z", kind="decision", label="shift_to_onsite", seq=None,
                              note="device left the registered site"))
    insp.outcome = "shift_to_onsite"
    store.create(insp)
    officer = init_officer(tmp_path / "officer", "officer-bob")
    service = InspectionService(store, CASE, FakeDevice(sealer, manual_clock), officer="officer-bob")
    result = build_report(service, tmp_path / "evidence", tmp_path / "out", officer, wait_s=0)
    yield {"result": result, "officer": officer, "tmp": tmp_path, "service": service}
    vault.close()


def test_report_bundle_verifies_and_names_every_tamper(reported: dict[str, Any], tmp_path: Path) -> None:
    res = reported["result"]
    assert res.verify["ok"], res.verify["problems"]
    rep = res.verify["report"]
    assert rep["signature_valid"] and rep["items_present"] == rep["items_listed"] == 5
    assert rep["sealed_at_seq"] == res.sealed_seq == 6
    how = res.html.read_text()  # bilingual by default: Chinese, then the same words in English
    assert "ALERT" in how and "警报" in how and "Too dark</span> (too_dark)" in how
    assert "Exit 0 means exactly this" in how and "--ca DEVICE_CA.pem --officer-ca OFFICER_CA.pem" in how
    assert "built-in method" not in how and ">5 items, seq 1..5" in how  # the pre-seal check's figures

    def variant(name: str, member: str, change: Any) -> dict[str, Any]:
        out = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(res.bundle) as zin, zipfile.ZipFile(out, "w") as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if info.filename == member or (member.endswith("*") and info.filename.startswith(member[:-1])):
                    if change is None:
                        continue
                    data = change(data)
                zout.writestr(info, data)
        return check(out, checkers=[report_checker()]).to_json()

    html = variant("html", "report/report.html", lambda b: b.replace(b"VERIFIED", b"VERIFIED!", 1))
    assert any(p["item"] == "report/report.html" for p in html["problems"])
    names = zipfile.ZipFile(res.bundle).namelist()
    rec = next(n for n in names if n.endswith(".still.rec"))
    gone = variant("gone", rec[:-4] + "*", None)  # record and media of one listed still removed
    assert any("in the report's signed run but missing" in p["problem"] for p in gone["problems"])

    def forge(data: bytes) -> bytes:
        env = json.loads(data)
        env["body"]["outcome"] = "completed"
        return json.dumps(env).encode()

    forged = variant("forged", "report/manifest.json", forge)
    assert not forged["report"]["signature_valid"]
    assert any("signature is invalid" in p["problem"] for p in forged["problems"])

    other = init_officer(tmp_path / "mallory", "officer-mallory")

    def resign(data: bytes) -> bytes:  # a different officer re-signs the same body under bob's name
        return sign_report(json.loads(data)["body"], other.private_key, other.cert)

    resigned = variant("resigned", "report/manifest.json", resign)
    assert any("signed by 'officer-mallory'" in p["problem"] for p in resigned["problems"])
    assert not any(p for p in check(res.bundle, checkers=[report_checker([other.cert])]).to_json()["problems"]
                   if "trusted officer CA" not in p["problem"])
    assert json.loads(zipfile.ZipFile(res.bundle).read("report/manifest.json"))["body"]["typ"] == REPORT_TYP


def test_identical_warnings_collapse_to_one_line_and_outcome_is_words(reported: dict[str, Any]) -> None:
    from agent.core.vocab import OUTCOME_LABELS, label_of
    from agent.customs.inspection.html import collapse_warnings

    many = [{"item": f"seq {n}", "warning": "no inclusion proof in the bundle"} for n in range(3, 498)]
    lines = collapse_warnings([*many, {"item": "log/proofs.json", "warning": "unreadable"},
                               {"item": "seq 600", "warning": "no inclusion proof in the bundle"}])
    assert lines == [{"warning": "no inclusion proof in the bundle", "count": 496, "where": "seq 3..600 (496 of 598)"},
                     {"warning": "unreadable", "count": 1, "where": "log/proofs.json"}]
    assert label_of(OUTCOME_LABELS, "shift_to_onsite") == "Shifted to an on-site inspection"
    assert label_of(OUTCOME_LABELS, "<b>odd</b>") == "<b>odd</b>" and label_of(OUTCOME_LABELS, None) is None
    html = reported["result"].html.read_text()
    assert "Shifted to an on-site inspection" in html and "Shift to an on-site inspection" in html
    assert "shift_to_onsite" not in html
    assert html.count("warning (") <= 1 and "seq 1..5" in html
    assert "Check-in stills at full size" in html and 'class="doc-tall"' in html  # the portrait document


def test_document_still_is_downscaled_to_the_document_side(tmp_path: Path) -> None:
    import io

    from PIL import Image

    from agent.customs.inspection.html import DOCUMENT_SIDE, thumbnail

    big = tmp_path / "doc.jpg"
    big.write_bytes(jpeg_bytes((4000, 3000), "POWER OF ATTORNEY"))
    jpeg, problem = thumbnail(big, DOCUMENT_SIDE)
    assert problem is None and jpeg is not None
    assert max(Image.open(io.BytesIO(jpeg)).size) == DOCUMENT_SIDE


def test_rebuild_needs_a_reason_and_makes_a_sealed_version_that_names_the_first(reported: dict[str, Any]) -> None:
    first, officer, tmp, service = reported["result"], reported["officer"], reported["tmp"], reported["service"]
    assert first.version == 1 and first.supersedes is None and first.bundle.name == "C-9_1-v1-bundle.zip"
    for reason in (None, "   "):
        with pytest.raises(ConfigError, match=r"already has signed report v1: .*give the reason"):
            build_report(service, tmp / "evidence", tmp / "out", officer, wait_s=0, reason=reason)
    with pytest.raises(ConfigError, match="500-character limit"):
        build_report(service, tmp / "evidence", tmp / "out", officer, wait_s=0, reason="x" * 501)
    second = build_report(service, tmp / "evidence", tmp / "out", officer, wait_s=0,
                          reason="identity document <b>re-read</b>")
    assert second.version == 2 and second.supersedes == first.manifest_sha256
    assert second.sealed_seq == first.sealed_seq + 1
    assert first.bundle.exists() and first.pdf.exists() and second.bundle.name == "C-9_1-v2-bundle.zip"
    assert second.verify["ok"], second.verify["problems"]
    rep = second.verify["report"]
    assert rep["version"] == 2 and rep["supersedes"] == first.manifest_sha256
    assert rep["superseded_sealed_at_seq"] == first.sealed_seq and rep["reason"] == "identity document <b>re-read</b>"
    body = json.loads(zipfile.ZipFile(second.bundle).read("report/manifest.json"))["body"]
    assert (body["version"], body["supersedes"]) == (2, first.manifest_sha256)
    assert json.loads(zipfile.ZipFile(first.bundle).read("report/manifest.json"))["body"]["supersedes"] is None
    html = second.html.read_text()
    assert "Report version 2 of case C-9/1" in html and first.manifest_sha256 in html
    assert "&lt;b&gt;re-read&lt;/b&gt;" in html and "<b>re-read" not in html
    readme = zipfile.ZipFile(second.bundle).read("README.txt").decode()
    assert "version 2 of the report" in readme and "--officer-ca OFFICER_CA.pem" in readme
    assert "exit 3" in readme and "verify exits 3" in readme
    insp = service.inspection
    assert insp.report["version"] == 2 and insp.report["history"][0]["manifest_sha256"] == first.manifest_sha256
    assert check(first.bundle, checkers=[report_checker()]).to_json()["ok"]  # the first stays valid on its own


def test_a_forged_version_claim_is_named(reported: dict[str, Any], tmp_path: Path) -> None:
    from agent.signing.report import Evidence, check_report

    officer = reported["officer"]
    for change, needle in (({"version": 2, "supersedes": None}, "must name the SHA-256"),
                           ({"version": 1, "supersedes": "0" * 64}, "cannot supersede"),
                           ({"version": "2"}, "malformed report version"),
                           ({"version": 2, "supersedes": "a" * 64, "reason": None}, "does not say why")):
        body = {"typ": REPORT_TYP, "officer": "officer-bob", "case": CASE, **change}
        raw = sign_report(body, officer.private_key, officer.cert)
        got = check_report(raw, Evidence({}, None, [], lambda _n, _s: None))
        assert any(needle in what for _w, what in got.problems), (change, got.problems)

"""A whole remote inspection in the officer console, in Debian's chromium (Playwright), against a running device
(`evidence-agent run`: a synthetic test-pattern clip with a covered-lens episode, GPS on a pseudo-terminal moved
from inside to outside the registered site), Mosquitto with TLS and `evidence-officer ingest`; then the signed
report's bundle through `evidence-agent verify`, untouched, tampered and with an item missing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from agent.signing.keys import init_identity, load_identity
from tests.support.console_stack import ConsoleStack, build_console_stack, chromium, need_browser
from tests.support.helpers import REPO
from tests.support.media import covered_lens_clip
from tests.support.nmea_pty import PtyGps

ENV_PY = sys.executable
CASE = "C-2026/0099"
DEVICE, SITE = "cam-insp", "farm-9"
LAT, LON = 31.2304, 121.4737
POLYGON = [(LAT - 0.0005, LON - 0.0005), (LAT - 0.0005, LON + 0.0005), (LAT + 0.0005, LON + 0.0005),
           (LAT + 0.0005, LON - 0.0005)]
OUTSIDE = (LAT + 0.003, LON + 0.003)
T = 60_000  # ms: every wait in the page is bounded


def make_clip(path: Path) -> None:
    """Test pattern at 10 fps with the lens 'covered' (black) 50-58 s into the clip."""
    covered_lens_clip(path, size="640x360", seconds=600, covered=(50, 58), timeout=180)


def device_config(st: ConsoleStack, gps: str, clip: Path) -> Path:
    base = st.root / DEVICE
    keys = base / "keys"
    init_identity(keys, DEVICE, "Green Fields Ltd")
    with st.device_ca.open("ab") as f:
        f.write(load_identity(keys).chain[-1].public_bytes(serialization.Encoding.PEM))
    tls = st.broker.pki.client(DEVICE)  # type: ignore[union-attr]
    poly = ", ".join(f"[{a}, {b}]" for a, b in POLYGON)
    path = base / "agent.toml"
    path.write_text(f"""
[device]
id = "{DEVICE}"
site_id = "{SITE}"
[identity]
key_dir = "{keys}"
[vault]
path = "{base / 'vault'}"
[capture]
backend = "opencv"
source = "{clip}"
realtime = true
fps = 10
still_interval_s = 10
[gps]
source = "serial"
device = "{gps}"
[video]
segment_seconds = 10
overlay = true
[video.analytics.geofence]
polygon = [{poly}]
[anchor]
batch_interval_s = 15
[uplink]
enabled = true
outbox_path = "{base / 'outbox.sqlite'}"
status_interval_s = 2
[uplink.mqtt]
broker = "{st.broker.url}"
client_id = "{DEVICE}"
reconnect_min_s = 1
reconnect_max_s = 2
[uplink.mqtt.tls]
ca_file = "{tls.ca}"
cert_file = "{tls.cert}"
key_file = "{tls.key}"
[uplink.commands]
trust_dir = "{st.trust}"
""")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_browser()
    root = tmp_path_factory.mktemp("inspection")
    clip = root / "clip.mp4"
    make_clip(clip)
    st = build_console_stack(root)
    gps = PtyGps(LAT, LON)
    try:
        received = st.start_ingest()
        st.start_device(device_config(st, gps.path, clip))
        _proc, url = st.start_console("officer-alice", extra_toml=(
            f'[inspections]\ndata = "{root / "console-data"}"\nevidence = "{received}"\n'), width=640, height=360,
            fps=10)
        yield {"st": st, "url": url, "gps": gps, "root": root}
    finally:
        st.close()
        gps.close()


def verify(path: Path) -> tuple[int, dict[str, Any]]:
    res = subprocess.run([ENV_PY, "-m", "agent.device.cli", "verify", str(path), "--json", "--allow-untrusted"],
                         capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    return res.returncode, json.loads(res.stdout)


def rewrite(src: Path, dst: Path, member: str, change: Any) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == member:
                if change is None:
                    continue
                data = change(data)
            zout.writestr(info, data)


def test_inspection_in_the_console_ends_in_a_verified_signed_report(stack: dict[str, Any]) -> None:
    url, gps, root = stack["url"], stack["gps"], stack["root"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(f"{url}/inspections")
        form = page.locator("#open-form")
        for name, value in (("case", CASE), ("enterprise", "Green Fields Ltd"), ("representative", "Li Wei"),
                            ("registered_site", "Field 9, Pudong"), ("device", DEVICE), ("site", SITE),
                            ("officers", "officer-alice"),
                            ("polygon", ";".join(f"{a},{b}" for a, b in POLYGON))):
            form.locator(f"[name={name}]").fill(value)
        page.click("#btn-open")
        page.wait_for_url("**/inspections?case=*", timeout=T)
        page.wait_for_selector("#case-title:has-text('open')", timeout=T)

        # Readiness: the device is up once it answers its self-test (retry while it starts).
        deadline = time.monotonic() + 90
        while "self-test" not in page.inner_text("#readiness") and time.monotonic() < deadline:
            page.click("#btn-ready")
            page.wait_for_timeout(2000)
        assert "self-test" in page.inner_text("#readiness")
        page.click("#btn-start")
        page.wait_for_selector("#case-title:has-text('started')", timeout=T)

        live = browser.new_page()  # the officer watches the live view for a moment; the device seals the session
        live.goto(f"{url}/live/{SITE}/{DEVICE}")
        live.wait_for_function("() => window.consoleStats && window.consoleStats.verified >= 3", timeout=T)
        live.close()

        for step in ("location", "identity_document", "power_of_attorney", "credentials"):
            page.fill(f"#checkin-note-{step}", f"{step} shown to the camera")
            page.click(f"#checkin-{step}")
            page.wait_for_selector(f"#result-{step}.ok", timeout=T)
        assert "inside" in page.inner_text("#result-location")
        page.fill("#note", "inputs store: 40 bags of urea")
        page.click("#btn-mark")
        page.wait_for_selector("#timeline li.mark", timeout=T)

        # The covered-lens episode in the clip arrives as a device-sealed alert with what to do.
        page.wait_for_selector("#alerts li[data-type=too_dark]", timeout=120_000)
        assert "uncover" in page.inner_text("#alerts")
        page.select_option("#decision", "continue")
        page.fill("#reason", "lens uncovered when asked")
        page.click("#btn-decision")
        page.click("#confirm-ok")
        page.wait_for_selector("#timeline li.decision", timeout=T)

        gps.position = OUTSIDE
        page.wait_for_timeout(3000)
        page.click("#checkin-location")
        page.wait_for_selector("#timeline li.checkin:has-text('NOT confirmed')", timeout=T)
        assert "NOT confirmed" in page.inner_text("#msg-checkin-location")
        page.select_option("#decision", "shift_to_onsite")
        page.fill("#reason", "device left the registered site")
        page.click("#btn-decision")
        page.click("#confirm-ok")
        page.wait_for_selector("#timeline li.decision >> nth=1", timeout=T)
        page.click("#btn-end")
        page.click("#confirm-ok")
        page.wait_for_selector("#case-title:has-text('ended')", timeout=T)
        page.click("#btn-report")
        page.wait_for_selector("#report-status", timeout=240_000)
        assert "verified" in page.inner_text("#report-status")
        # Built again: the confirmation asks why, refuses an empty reason, and version 2 names version 1.
        page.click("#btn-report")
        page.click("#confirm-ok")
        assert "give the reason" in page.inner_text("#confirm-msg")
        page.fill("#confirm-reason", "power of attorney re-read")
        page.screenshot(path=str(root / "rebuild-confirm.png"))
        page.click("#confirm-ok")
        page.wait_for_selector("#report-version:has-text('version 2')", timeout=240_000)
        page.locator("#report").screenshot(path=str(root / "report-v2.png"))
        assert "supersedes v1" in page.inner_text("#report-version")
        assert "verified" in page.inner_text("#report-status")
        assert "<svg" in page.inner_html("#map")
        page.screenshot(path=str(root / "inspection-page.png"), full_page=True)

    q = "?case=" + urllib.parse.quote(CASE)
    bundle = root / "bundle.zip"
    with urllib.request.urlopen(f"{url}/api/inspection/report/bundle.zip{q}", timeout=30) as r:
        bundle.write_bytes(r.read())
    with urllib.request.urlopen(f"{url}/api/inspection/report/report.html{q}", timeout=30) as r:
        html = r.read().decode()
    for needle in ("Representative's identity document", "Power of attorney", "Officers' credentials",  # zh-en
                   "ALERT", "Too dark</span> (too_dark)", "Shift to an on-site inspection", "Continue remotely",
                   "live session watched", "VERIFIED", "Report version 2 of case", "企业代表身份证件", "画面过暗",
                   "转为现场检查", "核验通过"):
        assert needle in html, needle
    rc, report = verify(bundle)
    assert rc == 0, report["problems"]
    assert report["report"]["signature_valid"] and report["report"]["officer"] == "officer-alice"
    assert report["report"]["items_present"] == report["report"]["items_listed"] > 10
    assert report["report"]["sealed_at_seq"] is not None
    assert report["report"]["version"] == 2 and report["report"]["superseded_sealed_at_seq"] is not None
    assert report["kinds"]["decision"] == 2 and report["kinds"]["live"] >= 1

    tampered = root / "tampered.zip"
    rewrite(bundle, tampered, "report/report.html", lambda b: b.replace(b"Shift to an on-site", b"Completed", 1))
    rc, bad = verify(tampered)
    assert rc == 1 and any(p["item"] == "report/report.html" for p in bad["problems"])
    still = next(n for n in zipfile.ZipFile(bundle).namelist() if n.endswith(".still.rec"))
    missing = root / "missing.zip"
    rewrite(bundle, missing, still, None)
    rc, bad = verify(missing)
    assert rc == 1 and any("signed run but missing" in p["problem"] for p in bad["problems"])

"""The one inspection screen, in Debian's chromium (Playwright), against a running device (`evidence-agent run`,
synthetic camera, simulated GPS), Mosquitto with TLS, `evidence-officer ingest` and the console process.

An officer runs the case from that screen only: live video beside the case, previews that open full size in the
viewer, a mark and a snapshot that land in the case timeline and in `evidence-officer inspection show`, buttons
that follow the case state, confirmation dialogs, an error beside the control (a report before the end is a 409,
never in the navigation bar). Attack: a device reply carrying markup in a still's label, note and GPS is shown as
text in the viewer and the timeline, and runs nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.customs.inspection.model import case_file_name
from tests.support.console_stack import ConsoleStack, build_console_stack, chromium, need_browser, spawn
from tests.support.helpers import REPO

CASE = "C-2026/0142"
DEVICE, SITE = "cam-ws", "farm-ws"
LAT, LON = 31.2304, 121.4737  # the simulated receiver's default centre (it walks within 25 m)
POLYGON = ";".join(f"{a},{b}" for a, b in ((LAT - 0.001, LON - 0.001), (LAT - 0.001, LON + 0.001),
                                            (LAT + 0.001, LON + 0.001), (LAT + 0.001, LON - 0.001)))
MARKUP = '<img src=x onerror="window.pwned=1">'
T = 60_000  # ms: every wait in the page is bounded


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_browser()
    root = tmp_path_factory.mktemp("workspace")
    st: ConsoleStack = build_console_stack(root)
    try:
        tls = st.broker.pki.client("ingest-1")  # type: ignore[union-attr]
        received = root / "received"
        st.procs.append(spawn("ingest", ["agent.customs.cli", "ingest", "--broker", st.broker.url, "--cafile",
                                         str(tls.ca), "--cert", str(tls.cert), "--key", str(tls.key), "--out",
                                         str(received), "--client-id", "ingest-1", "--index",
                                         str(root / "index.sqlite")], root / "ingest.log"))
        st.start_device(st.device_config(DEVICE, SITE, width=640, height=360, fps=10))
        deadline = time.monotonic() + 60  # the console refuses an index no ingest has created yet
        while not (root / "index.sqlite").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        data = root / "console-data"
        _proc, url = st.start_console("officer-alice", extra_toml=(
            f'[inspections]\ndata = "{data}"\nevidence = "{received}"\n[index]\nurl = "{root / "index.sqlite"}"\n'),
            width=640, height=360, fps=10)
        yield {"st": st, "url": url, "root": root, "data": data, "received": received}
    finally:
        st.close()


def disabled(page: Any) -> dict[str, bool]:
    ids = ("btn-ready", "btn-start", "btn-end", "btn-report", "btn-mark", "btn-snapshot", "btn-decision",
           "checkin-location")
    return {i: page.is_disabled(f"#{i}") for i in ids}


def show(data: Path) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-m", "agent.customs.cli", "inspection", "--data", str(data), "show", CASE,
                          "--json"], capture_output=True, text=True, cwd=REPO, timeout=60,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


def test_an_inspection_run_from_the_one_screen(stack: dict[str, Any]) -> None:
    url, root, data = stack["url"], stack["root"], stack["data"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/inspections")
        form = page.locator("#open-form")
        for name, value in (("case", CASE), ("enterprise", "Green Fields Ltd"), ("representative", "Li Wei"),
                            ("device", DEVICE), ("site", SITE), ("polygon", POLYGON)):
            form.locator(f"[name={name}]").fill(value)
        page.click("#btn-open")
        page.wait_for_url("**/inspections?case=*", timeout=T)
        page.wait_for_selector("#case-title:has-text('open')", timeout=T)
        page.wait_for_function("() => !document.getElementById('btn-start').disabled", timeout=T)
        assert disabled(page) == {"btn-ready": False, "btn-start": False, "btn-end": True, "btn-report": True,
                                  "btn-mark": True, "btn-snapshot": True, "btn-decision": True,
                                  "checkin-location": True}

        # A page left open elsewhere still asks for the report: a 409 beside the button, not in the header.
        page.evaluate("() => { document.getElementById('btn-report').disabled = false; }")
        page.click("#btn-report")
        page.wait_for_selector("#msg-report.bad", timeout=T)
        assert "end the inspection" in page.inner_text("#msg-report")
        assert page.inner_text("#status") == ""

        # Self-test (retried while the device starts): passed, but amber — the GPS receiver is simulated.
        deadline = time.monotonic() + 90
        while not page.query_selector("#readiness-result") and time.monotonic() < deadline:
            page.click("#btn-ready")
            page.wait_for_function("() => !document.getElementById('btn-ready').disabled", timeout=T)
        assert page.get_attribute("#readiness-result", "class") == "warn", page.inner_text("#readiness")
        assert "warning" in page.inner_text("#readiness-result")

        page.click("#btn-start")
        page.wait_for_selector("#case-title:has-text('started')", timeout=T)
        page.wait_for_selector("#live-frame", timeout=T)
        live = page.frame_locator("#live-frame")
        frame = page.frame(url=lambda u: "/live/" in u)
        assert frame is not None
        frame.wait_for_function("() => window.consoleStats && window.consoleStats.verified >= 3", timeout=T)
        live.locator("#badge.warn").wait_for(timeout=T)  # simulated GPS: amber, never a green "VERIFIED LIVE"
        assert "SIMULATED" in live.locator("#badge").inner_text()
        assert not live.locator("#actions-panel").is_visible()  # the case screen owns the actions
        assert disabled(page)["btn-start"] and not disabled(page)["btn-end"] and disabled(page)["btn-report"]

        # The fleet page: the open case, the simulated receiver in amber.
        fleet = browser.new_page(viewport={"width": 1600, "height": 500})
        fleet.goto(f"{url}/fleet")
        fleet.wait_for_selector(f"tr[data-device={DEVICE}] td.gps.warn", timeout=T)
        fleet.wait_for_selector(f"tr[data-device={DEVICE}] a.case-link:has-text('{CASE}')", timeout=T)
        assert "SIMULATED" in fleet.inner_text(f"tr[data-device={DEVICE}]")
        fleet.screenshot(path=str(root / "fleet.png"))
        fleet.close()

        # An empty mark is refused beside its button.
        page.click("#btn-mark")
        assert "needs a note" in page.inner_text("#msg-mark")

        for step in ("location", "identity_document"):
            page.fill(f"#checkin-note-{step}", f"{step} shown to the camera")
            page.click(f"#checkin-{step}")
            page.wait_for_selector(f"#result-{step}.ok, #result-{step}.warn", timeout=T)
        # the preview appears once the ingest has the picture, and opens full size in the viewer with zoom
        page.wait_for_selector("#preview-identity_document img.thumb", timeout=120_000)
        page.click("#preview-identity_document .thumb-btn")
        page.wait_for_selector("#viewer[open]", timeout=T)
        page.wait_for_function("() => document.getElementById('viewer-img').naturalWidth > 0", timeout=T)
        assert page.evaluate("() => document.getElementById('viewer-img').naturalWidth") >= 640
        fit = page.inner_text("#viewer-zoom")
        page.click("#viewer-in")
        assert page.inner_text("#viewer-zoom") != fit
        assert "identity_document" in page.inner_text("#viewer-caption")
        page.click("#viewer-close")

        page.fill("#note", "inputs store: 40 bags of urea")
        page.click("#btn-mark")
        page.wait_for_selector("#timeline li.mark", timeout=T)
        page.fill("#note", f"label {MARKUP}")
        page.click("#btn-snapshot")
        page.wait_for_selector("#timeline li.snapshot", timeout=T)
        mark_seq = int(page.get_attribute("#timeline li.mark", "data-seq") or -1)
        snap_seq = int(page.get_attribute("#timeline li.snapshot", "data-seq") or -1)
        shown = show(data)
        kinds = {(e["kind"], e["seq"]) for e in shown["inspection"]["entries"]}
        assert ("mark", mark_seq) in kinds and ("snapshot", snap_seq) in kinds

        # Attack: a compromised device answers the snapshot with markup in the label and the GPS; the session
        # keeps what the device replied, and the page shows it as text.
        session = data / "inspections" / case_file_name(CASE)
        doc = json.loads(session.read_text())
        for e in doc["entries"]:
            if e["kind"] == "snapshot":
                e["label"] = MARKUP
                e["details"]["gps"] = {"fix": "3d", "lat": MARKUP, "lon": 1, "status": MARKUP, "talker": MARKUP}
        session.write_text(json.dumps(doc))
        page.wait_for_function(f"() => document.querySelector('#timeline li.snapshot').textContent"
                               f".includes({json.dumps(MARKUP)})", timeout=T)
        page.wait_for_selector(f"#timeline li.snapshot .thumb-btn[data-seq='{snap_seq}']", timeout=120_000)
        page.click(f"#timeline li.snapshot .thumb-btn[data-seq='{snap_seq}']")
        page.wait_for_selector("#viewer[open]", timeout=T)
        assert MARKUP in page.inner_text("#viewer-caption")
        page.screenshot(path=str(root / "viewer.png"))
        page.click("#viewer-close")
        assert page.evaluate("() => window.pwned") is None
        assert page.locator("img[src=x]").count() == 0

        # The live page opened on its own while the case runs: its mark belongs to the case too.
        solo = browser.new_page()
        solo.goto(f"{url}/live/{SITE}/{DEVICE}")
        solo.wait_for_selector(f"#case-note:has-text('{CASE}')", timeout=T)
        solo.fill("#note", "seen on the live page")
        solo.click("#mark")
        solo.wait_for_selector("#actions li:has-text('in case')", timeout=T)
        solo.close()
        page.wait_for_selector("#timeline li.mark:has-text('seen on the live page')", timeout=T)

        # Decisions and the end ask first; cancelling seals nothing.
        page.fill("#reason", "goods as declared")
        page.click("#btn-decision")
        page.wait_for_selector("#confirm[open]", timeout=T)
        assert "continue remotely" in page.inner_text("#confirm-text")
        page.click("#confirm-cancel")
        page.wait_for_timeout(500)  # nothing to wait for: a cancelled step sends nothing
        assert page.locator("#timeline li.decision").count() == 0
        page.click("#btn-decision")
        page.click("#confirm-ok")
        page.wait_for_selector("#timeline li.decision", timeout=T)
        page.screenshot(path=str(root / "workspace.png"), full_page=True)

        page.click("#btn-end")
        page.wait_for_selector("#confirm[open]", timeout=T)
        assert "End inspection" in page.inner_text("#confirm-text")
        page.click("#confirm-ok")
        page.wait_for_selector("#case-title:has-text('ended')", timeout=T)
        page.wait_for_function("() => !document.getElementById('btn-report').disabled", timeout=T)
        state = disabled(page)
        assert state["btn-end"] and state["btn-mark"] and state["btn-snapshot"] and state["checkin-location"]
        assert page.locator("#live-frame").count() == 0
        page.screenshot(path=str(root / "ended.png"), full_page=True)
        assert not errors, errors
        # Case search finds every item of the case (not just the case's own records); a still shows its picture.
        search = browser.new_page(viewport={"width": 1600, "height": 1000})
        search.goto(f"{url}/search?case={CASE}")
        search.wait_for_function("() => window.searchStats && window.searchStats.rows > 0", timeout=T)
        kinds = set(search.locator("#results tbody tr td:nth-child(5)").all_inner_texts())
        assert {"inspection_start", "still", "mark", "decision"} <= kinds, kinds
        search.click(f"#results tbody tr[data-seq='{snap_seq}']")
        search.wait_for_function("() => { const i = document.getElementById('detail-img');"
                                 " return i && i.naturalWidth > 0; }", timeout=T)
        search.screenshot(path=str(root / "search.png"))
    assert show(data)["inspection"]["state"] == "ended"

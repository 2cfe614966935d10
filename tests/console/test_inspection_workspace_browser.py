"""A whole inspection from the one inspection screen, in Debian's chromium (Playwright), through the real processes:
Mosquitto with TLS as `evidence-officer broker-setup` configures it, a device (`evidence-agent run --config`,
synthetic camera, simulated GPS), `evidence-officer ingest`, the console (`[report] tsa_url`: a real openssl TSA).

An officer runs the case from that screen only: opening it with a scheduled time sends the device a signed advance
notice (sealed there, listed in its status), live video beside the case, previews that open full size in the
viewer (a full-resolution identity-document still: the synthetic camera's 4608x2592 "sensor", shown at its
own size), marks, snapshots, check-in steps and the decision land in the case timeline and in `evidence-officer
inspection show`, buttons follow the case state, confirmation dialogs, an error beside the control (a report before
the end is a 409, never in the navigation bar). The device process is stopped and started mid-case: the restart is
an alert on the screen and in the report. The report is built, then rebuilt with a reason (two versions, both
sealed); the enterprise countersigns the PDF (`evidence-agent countersign`); `evidence-agent verify` passes both
bundles, `verify-pdf` both signatures, pyHanko's own validator (its `pyhanko sign validate` CLI) accepts both, and
`pdftotext` shows the Chinese text. Attack: a device reply carrying markup in a still's label, note and GPS is
shown as text in the viewer and the timeline, and runs nothing."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agent.customs.inspection.model import case_file_name
from tests.support import pades
from tests.support.console_stack import ConsoleStack, build_console_stack, chromium, need_browser
from tests.support.fleet import officer_cli
from tests.support.helpers import REPO
from tests.support.tsa_server import LocalTsa

CASE = "C-2026/0142"
DEVICE, SITE = "cam-ws", "farm-ws"
LAT, LON = 31.2304, 121.4737  # the simulated receiver's default centre (it walks within 25 m)
POLYGON = ";".join(f"{a},{b}" for a, b in ((LAT - 0.001, LON - 0.001), (LAT - 0.001, LON + 0.001),
                                            (LAT + 0.001, LON + 0.001), (LAT + 0.001, LON - 0.001)))
MARKUP = '<img src=x onerror="window.pwned=1">'
SENSOR = (4608, 2592)  # the synthetic camera's "sensor": a full-resolution check-in still is this size
ENTERPRISE = "绿野农场有限公司 Green Fields Ltd"
LEGAL_NAME, BADGE = "王小明 Wang Xiaoming", "B-0417"
T = 60_000  # ms: every wait in the page is bounded
SLOW = 300_000  # ms: a report build on a loaded machine


def legal_officer(root: Path, st: ConsoleStack) -> Path:
    """officer-alice's signing key from a customs CA (`ca issue-officer`: legal name, badge), trusted by the
    device; returns the customs CA certificate (the enterprise's --officer-ca)."""
    ca, out = root / "customs-ca", root / "officers" / "alice-legal"
    for args in (("ca", "init", "--dir", str(ca), "--org", "Customs Authority"),
                 ("ca", "issue-officer", "--dir", str(ca), "officer-alice", "--legal-name", LEGAL_NAME, "--badge",
                  BADGE, "--out", str(out))):
        res = officer_cli(*args)
        assert res.returncode == 0, res.stdout + res.stderr
    st.officer_dirs["officer-alice"] = out
    shutil.copy(out / "officer.pem", st.trust / "officer-alice.pem")
    return ca / "ca.pem"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_browser()
    root = tmp_path_factory.mktemp("workspace")
    st: ConsoleStack = build_console_stack(root, broker_setup={DEVICE: SITE})
    tsa = LocalTsa()
    try:
        customs_ca = legal_officer(root, st)
        received = st.start_ingest(index=True)
        device_cfg = st.device_config(DEVICE, SITE, width=640, height=360, fps=10, sensor=SENSOR)
        st.start_device(device_cfg)
        data = root / "console-data"
        _proc, url = st.start_console("officer-alice", extra_toml=(
            f'[inspections]\ndata = "{data}"\nevidence = "{received}"\n[index]\nurl = "{root / "index.sqlite"}"\n'
            f'[report]\ntsa_url = "{tsa.url}"\n'), width=640, height=360, fps=10)
        yield {"st": st, "url": url, "root": root, "data": data, "received": received, "device_cfg": device_cfg,
               "customs_ca": customs_ca, "tsa": tsa}
    finally:
        st.close()
        tsa.close()


def disabled(page: Any) -> dict[str, bool]:
    ids = ("btn-ready", "btn-start", "btn-end", "btn-report", "btn-mark", "btn-snapshot", "btn-decision",
           "checkin-location")
    return {i: page.is_disabled(f"#{i}") for i in ids}


def show_text(data: Path, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "agent.customs.cli", "inspection", "--data", str(data), "show", CASE,
                          *args], capture_output=True, text=True, cwd=REPO, timeout=60,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    return res.stdout


def show(data: Path, *args: str) -> dict[str, Any]:
    return dict(json.loads(show_text(data, "--json", *args)))


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A real command line (``agent.device.cli`` = evidence-agent) in a child process."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_a_whole_inspection_run_from_the_one_screen(stack: dict[str, Any]) -> None:
    url, root, data = stack["url"], stack["root"], stack["data"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/inspections")
        form = page.locator("#open-form")
        # the date input takes the browser's local time; the page sends it as UTC
        local = page.evaluate("() => { const d = new Date(Date.now() + 3 * 86400e3); d.setSeconds(0, 0);"
                              " return [d.toISOString(), new Date(d - d.getTimezoneOffset() * 60e3)"
                              ".toISOString().slice(0, 16)]; }")
        for name, value in (("case", CASE), ("enterprise", ENTERPRISE), ("representative", "Li Wei"),
                            ("device", DEVICE), ("site", SITE), ("polygon", POLYGON), ("scheduled", local[1])):
            form.locator(f"[name={name}]").fill(value)
        page.click("#btn-open")
        page.wait_for_url("**/inspections?case=*", timeout=T)
        page.wait_for_selector("#case-title:has-text('open')", timeout=T)

        # Advance notice: sent with the open (again from the case panel while the device is still starting),
        # sealed by the device and listed in its retained status (the fleet page shows it).
        scheduled = dt.datetime.fromisoformat(local[0].replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%SZ")
        page.wait_for_selector("#notice-result", timeout=T)
        deadline = time.monotonic() + 90
        while "delivered, sealed" not in page.inner_text("#notice-result") and time.monotonic() < deadline:
            page.click("#btn-notice")
            page.wait_for_function("() => !document.getElementById('btn-notice').disabled", timeout=T)
        assert page.get_attribute("#notice-result", "class") == "ok", page.inner_text("#notice")
        assert f"scheduled {scheduled}" in page.inner_text("#notice")
        notice = show(data)["inspection"]["notice"]
        assert notice["delivered"] and notice["scheduled"] == scheduled and isinstance(notice["seq"], int)
        fleet = browser.new_page(viewport={"width": 1600, "height": 500})
        fleet.goto(f"{url}/fleet")
        fleet.wait_for_selector(f"tr[data-device={DEVICE}] .upcoming:has-text('case {CASE} scheduled {scheduled}')",
                                timeout=T)
        fleet.close()
        page.wait_for_function("() => !document.getElementById('btn-start').disabled", timeout=T)
        assert disabled(page) == {"btn-ready": False, "btn-start": False, "btn-end": True, "btn-report": True,
                                  "btn-mark": True, "btn-snapshot": True, "btn-decision": True,
                                  "checkin-location": True}

        # A page left open elsewhere still asks for the report: a 409 beside the button, not in the header.
        # (enabled and clicked in one task: the page's own refresh would disable it again between two steps)
        page.evaluate("() => { const b = document.getElementById('btn-report'); b.disabled = false; b.click(); }")
        page.wait_for_selector("#msg-report.bad", timeout=T)
        assert "end the inspection" in page.inner_text("#msg-report")
        assert page.inner_text("#status") == ""

        # Self-test: passed, but amber — the GPS receiver is simulated.
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
        live.locator("#badge").wait_for(timeout=T)  # the frame has navigated to the live page (else a race)
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
            page.set_checked("#checkin-full", step == "identity_document")  # the document: the full sensor
            page.click(f"#checkin-{step}")
            page.wait_for_selector(f"#result-{step}.ok, #result-{step}.warn", timeout=T)
        page.set_checked("#checkin-full", False)
        page.wait_for_selector(f"#timeline li.checkin:has-text('full resolution {SENSOR[0]} × {SENSOR[1]}')",
                               timeout=T)
        # the preview appears once the ingest has the picture, and opens full size in the viewer with zoom
        page.wait_for_selector("#preview-identity_document img.thumb", timeout=120_000)
        page.click("#preview-identity_document .thumb-btn")
        page.wait_for_selector("#viewer[open]", timeout=T)
        page.wait_for_function("() => document.getElementById('viewer-img').naturalWidth > 0", timeout=T)
        natural = page.evaluate("() => { const i = document.getElementById('viewer-img');"
                                " return [i.naturalWidth, i.naturalHeight]; }")
        assert tuple(natural) == SENSOR  # the sealed JPEG itself, at the sensor's size
        assert page.inner_text("#viewer-size") == f"{SENSOR[0]} × {SENSOR[1]} pixels"
        assert f"{SENSOR[0]} × {SENSOR[1]} (full resolution)" in page.inner_text("#viewer-caption")
        fit = page.inner_text("#viewer-zoom")
        page.click("#viewer-in")
        assert page.inner_text("#viewer-zoom") != fit
        page.click("#viewer-100")  # every sensor pixel on screen: the picture is as wide as the sensor
        assert page.inner_text("#viewer-zoom") == "100 %"
        assert page.evaluate("() => document.getElementById('viewer-img').getBoundingClientRect().width") == \
            SENSOR[0]
        assert "identity_document" in page.inner_text("#viewer-caption")
        page.screenshot(path=str(root / "viewer-full.png"))
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

        # The device process is stopped and started again mid-case: an alert on the screen, with its length.
        device = next(p for p in stack["st"].procs if p.name == DEVICE)
        device.stop()
        stack["st"].start_device(stack["device_cfg"])
        page.wait_for_selector("#alerts li[data-type='restart']", timeout=SLOW)
        assert "the agent restarted (same boot) after" in page.inner_text("#alerts li[data-type='restart']")

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
        report_and_countersign(page, stack, root)
    shown = show(data, "--evidence", str(stack["received"]))
    assert shown["inspection"]["state"] == "reported"
    restart = [a for a in shown["alerts"] if a["type"] == "restart"]
    assert len(restart) == 1, shown["alerts"]
    kinds = [e["kind"] for e in shown["inspection"]["entries"]]
    for kind in ("notice", "readiness", "start", "checkin", "mark", "snapshot", "decision", "end", "report"):
        assert kind in kinds, (kind, kinds)
    text = show_text(data, "--evidence", str(stack["received"]))
    assert f"scheduled: {scheduled}; advance notice delivered" in text and "self-test: WARN" in text
    assert f"ALERT seq {restart[0]['seq']} restart" in text


def report_and_countersign(page: Any, stack: dict[str, Any], root: Path) -> None:
    """Build the report, rebuild it with a reason, hand the PDF to the enterprise, check everything."""
    url, data, tsa, customs_ca = stack["url"], stack["data"], stack["tsa"], stack["customs_ca"]
    page.click("#btn-report")
    page.wait_for_selector("#report-status.ok", timeout=SLOW)
    assert page.inner_text("#report-version").startswith("version 1")
    page.click("#btn-report")
    page.wait_for_selector("#confirm[open]", timeout=T)
    page.fill("#confirm-reason", "the device restart is annotated")
    page.click("#confirm-ok")
    page.wait_for_selector("#report-version:has-text('version 2')", timeout=SLOW)
    assert "the device restart is annotated" in page.inner_text("#report-version")
    page.wait_for_selector("#report-status.ok", timeout=T)
    page.screenshot(path=str(root / "reported.png"), full_page=True)

    rep = show(data)["inspection"]["report"]
    v1 = rep["history"][0]
    assert (rep["version"], v1["version"]) == (2, 1) and rep["supersedes"] == v1["manifest_sha256"]
    assert isinstance(rep["sealed_seq"], int) and isinstance(v1["sealed_seq"], int)
    assert rep["sealed_seq"] > v1["sealed_seq"]  # both versions sealed by the device, in order
    bundles = [Path(v1["bundle"]), Path(rep["bundle"])]
    for bundle in bundles:
        res = run("agent.device.cli", "verify", str(bundle), "--ca", str(stack["st"].device_ca), "--officer-ca",
                  str(customs_ca), "--tsa-ca", str(tsa.ca_file))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]

    # What the enterprise receives: the PDF the console serves (version 2, signed with a TSA timestamp).
    with urllib.request.urlopen(f"{url}/api/inspection/report/report.pdf?case={CASE.replace('/', '%2F')}",
                                timeout=60) as r:
        pdf = r.read()
    with zipfile.ZipFile(bundles[1]) as z:
        assert z.read("report/report.pdf") == pdf
    (root / "report.pdf").write_bytes(pdf)
    ent = pades.enterprise(root / "enterprise", org="绿野农场有限公司")
    final = root / "report-countersigned.pdf"
    res = run("agent.device.cli", "countersign", str(root / "report.pdf"), "--key", str(ent.key_file), "--cert",
              str(ent.cert_file), "--chain", str(ent.ca_file), "--tsa", tsa.url, "--out", str(final))
    assert res.returncode == 0, res.stderr
    res = run("agent.device.cli", "verify-pdf", str(final), "--officer-ca", str(customs_ca), "--enterprise-ca",
              str(ent.ca_file), "--tsa-ca", str(tsa.ca_file))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{LEGAL_NAME} (badge {BADGE}" in res.stdout

    # pyHanko's own validator (its command line, not project code): both signatures valid and trusted.
    pyhanko = Path(sys.executable).with_name("pyhanko")
    res = subprocess.run([str(pyhanko), "sign", "validate", "--trust", str(customs_ca), "--trust", str(ent.ca_file),
                          "--trust", str(tsa.ca_file), "--trust-replace", "--no-revocation-check",
                          "--executive-summary", str(final)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    verdicts = [line.rsplit(":", 1) for line in res.stdout.splitlines() if line.count(":") == 2]
    assert [(v[0].split(":")[0], v[1]) for v in verdicts] == [("OfficerSignature", "VALID"),
                                                               ("EnterpriseSignature", "VALID")], res.stdout
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    def vc(pem: Path) -> ValidationContext:
        from cryptography import x509 as cx509
        from cryptography.hazmat.primitives.serialization import Encoding

        return ValidationContext(trust_roots=[asn1_x509.Certificate.load(c.public_bytes(Encoding.DER))
                                              for c in cx509.load_pem_x509_certificates(pem.read_bytes())],
                                 allow_fetching=False)

    officer_sig = PdfFileReader(io.BytesIO(final.read_bytes())).embedded_signatures[0]
    with ThreadPoolExecutor(1) as pool:  # pyHanko runs its own event loop; Playwright's runs in this thread
        status = pool.submit(validate_pdf_signature, officer_sig, vc(customs_ca),
                             ts_validation_context=vc(tsa.ca_file)).result()
    assert status.bottom_line and status.timestamp_validity is not None and status.timestamp_validity.trusted

    # The Chinese text is text in the PDF (not pictures of it): enterprise name, signature page; the restart and
    # the version are in the report itself.
    text = " ".join(subprocess.run(["pdftotext", str(final), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())  # one line: pdftotext breaks lines as laid out
    assert "绿野农场有限公司" in text and "海关官员" in text and LEGAL_NAME in text
    # the report is bilingual (zh-en): each label is Chinese then English, the alert's type in brackets
    assert re.search(r"警报 (?:/ )?ALERT .{0,80}\(restart\)", text), text[:3000]
    assert "Report version 2" in text and "the device restart is annotated" in text
    # the full-resolution check-in still has a page of its own, its pixel size stated
    assert "Full-resolution stills" in text and f"{SENSOR[0]} × {SENSOR[1]} pixels, full resolution" in text

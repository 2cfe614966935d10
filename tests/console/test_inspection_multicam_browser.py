"""A two-camera case (issue 23) from the inspection screen, in Debian's chromium, through the real processes:
Mosquitto with TLS as `evidence-officer broker-setup` configures it (both devices registered on one site), two
devices (`evidence-agent run --config`, synthetic cameras, simulated GPS), `evidence-officer ingest`, the console.

The officer opens the case naming both devices, sees both live views side by side, sends check-ins and a
snapshot to the store's camera and a mark to the yard's, ends the case (sealed on both) and builds the report;
`evidence-agent verify` of the bundle checks each device's chain on its own and the signed per-device runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.console_stack import ConsoleStack, build_console_stack, chromium, need_browser
from tests.support.fleet import officer_cli
from tests.support.helpers import REPO

CASE = "C-2026/0231"
YARD, STORE, SITE = "cam-yard", "cam-store", "farm-mc"
LAT, LON = 31.2304, 121.4737
POLYGON = ";".join(f"{a},{b}" for a, b in ((LAT - 0.001, LON - 0.001), (LAT - 0.001, LON + 0.001),
                                            (LAT + 0.001, LON + 0.001), (LAT + 0.001, LON - 0.001)))
T = 90_000  # ms: every wait in the page is bounded
SLOW = 300_000  # ms: a report build on a loaded machine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_browser()
    root = tmp_path_factory.mktemp("multicam")
    st: ConsoleStack = build_console_stack(root, broker_setup={YARD: SITE, STORE: SITE})
    try:
        ca, out = root / "customs-ca", root / "officers" / "alice-ca"
        for args in (("ca", "init", "--dir", str(ca), "--org", "Customs Authority"),
                     ("ca", "issue-officer", "--dir", str(ca), "officer-alice", "--legal-name", "Alice",
                      "--badge", "B-1", "--out", str(out))):
            res = officer_cli(*args)
            assert res.returncode == 0, res.stdout + res.stderr
        st.officer_dirs["officer-alice"] = out
        shutil.copy(out / "officer.pem", st.trust / "officer-alice.pem")
        received = st.start_ingest(index=True)
        for device in (YARD, STORE):
            st.start_device(st.device_config(device, SITE, width=320, height=240, fps=5))
        data = root / "console-data"
        _proc, url = st.start_console("officer-alice", extra_toml=(
            f'[inspections]\ndata = "{data}"\nevidence = "{received}"\n[index]\nurl = "{root / "index.sqlite"}"\n'),
            width=320, height=240, fps=5)
        yield {"st": st, "url": url, "root": root, "data": data, "received": received, "customs_ca": ca / "ca.pem"}
    finally:
        st.close()


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def retry_click(page: Any, button: str, done: str) -> None:
    """Click until ``done`` shows (a device still connecting answers late): each click waits for its result."""
    deadline = time.monotonic() + 120
    while not page.query_selector(done) and time.monotonic() < deadline:
        page.click(button)
        page.wait_for_function(f"() => !document.querySelector('{button}').disabled", timeout=T)


def test_a_two_camera_case_runs_and_its_report_verifies_per_device(stack: dict[str, Any]) -> None:
    url, data, st = stack["url"], stack["data"], stack["st"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/inspections")
        form = page.locator("#open-form")
        for name, value in (("case", CASE), ("enterprise", "Green Fields Ltd"), ("device", f"{YARD}, {STORE}"),
                            ("site", SITE), ("polygon", POLYGON)):
            form.locator(f"[name={name}]").fill(value)
        page.click("#btn-open")
        page.wait_for_url("**/inspections?case=*", timeout=T)
        page.wait_for_selector("#case-title:has-text('open')", timeout=T)
        assert page.is_visible("#device-ctl")
        assert page.eval_on_selector_all("#device-pick option", "os => os.map(o => o.value)") == [YARD, STORE]

        page.select_option("#device-pick", STORE)  # the store camera's self-test
        retry_click(page, "#btn-ready", "#readiness-result")  # the store camera answers: both are connected now
        page.select_option("#device-pick", YARD)
        retry_click(page, "#btn-ready", f"#timeline li.readiness[data-device='{YARD}']")
        page.click("#btn-start")
        page.wait_for_selector("#case-title:has-text('started')", timeout=T)
        page.wait_for_selector("#live-frame-1", timeout=T)
        assert page.get_attribute("#live-frame", "data-device") == YARD
        assert page.get_attribute("#live-frame-1", "data-device") == STORE
        for device in (YARD, STORE):  # both live views verify fragments signed by their own device
            frame = page.frame(url=lambda u, d=device: f"/live/{SITE}/{d}" in u)
            assert frame is not None, device
            frame.wait_for_function("() => window.consoleStats && window.consoleStats.verified >= 2", timeout=T)

        page.select_option("#device-pick", STORE)
        page.click("#checkin-identity_document")
        page.wait_for_selector("#result-identity_document.ok, #result-identity_document.warn", timeout=T)  # sim GPS
        assert f"[{STORE}] seq" in page.inner_text("#result-identity_document")
        page.fill("#note", "input store shelves")
        page.click("#btn-snapshot")
        page.wait_for_selector(f"#timeline li.snapshot[data-device='{STORE}']", timeout=T)
        page.select_option("#device-pick", YARD)
        page.fill("#note", "yard gate open")
        page.click("#btn-mark")
        page.wait_for_selector(f"#timeline li.mark[data-device='{YARD}']", timeout=T)
        # the store's still arrives through the ingest and previews from that device's evidence
        page.wait_for_selector(f"#timeline li.snapshot .thumb-btn[data-device='{STORE}']", timeout=SLOW)

        page.click("#btn-end")
        page.wait_for_selector("#confirm[open]", timeout=T)
        page.click("#confirm-ok")
        page.wait_for_selector("#case-title:has-text('ended')", timeout=T)
        ends = page.eval_on_selector_all("#timeline li.end", "ls => ls.map(l => l.dataset.device)")
        assert sorted(ends) == sorted([YARD, STORE])  # sealed on every device of the case
        page.wait_for_function("() => !document.getElementById('btn-report').disabled", timeout=T)
        page.click("#btn-report")
        page.wait_for_selector("#report-status.ok, #report-status.bad, #msg-report.bad", timeout=SLOW)
        assert page.query_selector("#report-status.ok"), page.inner_text("#report") + page.inner_text("#msg-report")
        page.screenshot(path=str(stack["root"] / "multicam.png"), full_page=True)
        assert not errors, errors

    session = json.loads(next((data / "inspections").glob("*.json")).read_text())
    bundle = Path(session["report"]["bundle"])
    res = run("agent.device.cli", "verify", str(bundle), "--ca", str(st.device_ca), "--officer-ca",
              str(stack["customs_ca"]), "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 0, json.dumps(doc["problems"])[-3000:] + res.stderr[-2000:]
    assert set(doc["devices"]) == {YARD, STORE} and all(d["ok"] for d in doc["devices"].values())
    assert set(doc["report"]["runs"]) == {YARD, STORE}
    for device in (YARD, STORE):
        start, end = session["runs"][device]["start_seq"], session["runs"][device]["end_seq"]
        assert doc["report"]["runs"][device] == {"first_seq": start, "last_seq": end, "count": end - start + 1}

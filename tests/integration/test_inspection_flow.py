"""A whole remote inspection through the processes a user runs: `evidence-agent run` (camera from a
synthetic clip with a covered-lens episode, GPS on a pseudo-terminal moved from inside to outside the
site), `evidence-officer ingest`, `evidence-officer cmd` and `evidence-officer inspection ...`, ending in a
signed report whose bundle `evidence-agent verify` accepts — and refuses once tampered with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import Mosquitto
from tests.support.helpers import REPO, wait_until
from tests.support.media import covered_lens_clip
from tests.support.nmea_pty import PtyGps

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
CASE = "C-2026/0042"
DEVICE, SITE = "cam-insp", "farm-7"
LAT, LON = 31.2304, 121.4737
# A ~110 m x ~95 m field around the device's starting point.
POLYGON = [(LAT - 0.0005, LON - 0.0005), (LAT - 0.0005, LON + 0.0005), (LAT + 0.0005, LON + 0.0005),
           (LAT + 0.0005, LON - 0.0005)]
OUTSIDE = (LAT + 0.003, LON + 0.003)  # ~430 m away


def run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, cwd=REPO)


def officer(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run("agent.customs.cli", *args, timeout=timeout)


def make_clip(path: Path) -> None:
    """Test pattern, 10 fps, with the lens 'covered' (black) from 45 s to 53 s of the clip."""
    covered_lens_clip(path, size="320x240", seconds=400, covered=(45, 53), timeout=120)


def agent_config(tmp: Path, broker: str, gps_device: str, clip: Path) -> Path:
    poly = ", ".join(f"[{a}, {b}]" for a, b in POLYGON)
    cfg = tmp / "agent.toml"
    cfg.write_text(f"""
[device]
id = "{DEVICE}"
site_id = "{SITE}"
[identity]
key_dir = "{tmp / 'device-keys'}"
[vault]
path = "{tmp / 'vault'}"
[capture]
backend = "opencv"
source = "{clip}"
realtime = true
fps = 10
still_interval_s = 5
[gps]
source = "serial"
device = "{gps_device}"
[video]
segment_seconds = 5
[video.analytics.geofence]
polygon = [{poly}]
[anchor]
batch_interval_s = 10
[uplink]
enabled = true
outbox_path = "{tmp / 'outbox.sqlite'}"
[uplink.mqtt]
broker = "{broker}"
client_id = "{DEVICE}"
[uplink.commands]
trust_dir = "{tmp / 'officers'}"
""")
    return cfg


class Officer:
    def __init__(self, tmp: Path, broker: str) -> None:
        self.data, self.keys, self.broker = tmp / "console", tmp / "officer-keys", broker

    def inspection(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        sub, rest = args[0], args[1:]
        conn = [] if sub in ("open", "show", "list") else ["--broker", self.broker, "--keys", str(self.keys)]
        return officer("inspection", "--data", str(self.data), sub, *rest, *conn, timeout=timeout)

    def show(self, evidence: Path) -> dict[str, Any]:
        res = self.inspection("show", CASE, "--evidence", str(evidence), "--json")
        assert res.returncode == 0, res.stderr
        out: dict[str, Any] = json.loads(res.stdout)
        return out


@pytest.fixture
def device(plain_mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[Officer, Path, PtyGps]]:
    clip = tmp_path / "clip.mp4"
    make_clip(clip)
    assert run("agent.device.cli", "keys", "init", "--key-dir", str(tmp_path / "device-keys"),
               "--device-id", DEVICE).returncode == 0
    res = officer("keys", "init", "--dir", str(tmp_path / "officer-keys"), "--officer-id", "officer-alice")
    assert res.returncode == 0, res.stderr
    (tmp_path / "officers").mkdir()
    shutil.copy(tmp_path / "officer-keys" / "officer.pem", tmp_path / "officers" / "officer-alice.pem")
    (tmp_path / "officers" / "permissions.json").write_text('{"officer-alice": ["*"]}')
    gps = PtyGps(LAT, LON)
    received = tmp_path / "received"
    procs = [subprocess.Popen([sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", plain_mosquitto.url,
                               "--out", str(received), "--client-id", "ingest-insp"], env=ENV, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "ingest.log", "w"))]  # noqa: SIM115
    time.sleep(1.0)
    cfg = agent_config(tmp_path, plain_mosquitto.url, gps.path, clip)

    def start_agent() -> None:
        procs.append(subprocess.Popen([sys.executable, "-m", "agent.device.cli", "run", "--config", str(cfg)],
                                      env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=open(tmp_path / "agent.log", "a")))  # noqa: SIM115

    def restart_agent() -> None:
        agent = procs.pop()
        agent.terminate()
        agent.wait(60)
        start_agent()

    start_agent()
    off = Officer(tmp_path, plain_mosquitto.url)
    off.restart_agent = restart_agent  # type: ignore[attr-defined]
    try:
        yield off, received, gps
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        gps.close()


def test_whole_inspection_to_a_verified_signed_report(device: tuple[Officer, Path, PtyGps], tmp_path: Path) -> None:
    off, received, gps = device
    poly = ";".join(f"{a},{b}" for a, b in POLYGON)
    res = off.inspection("open", CASE, "--enterprise", "Green Fields Ltd", "--device", DEVICE, "--site", SITE,
                         "--polygon", poly, "--registered-site", "Field 7, Pudong", "--representative", "Li Wei",
                         "--officer", "officer-alice", "--planned-minutes", "25")
    assert res.returncode == 0, res.stderr
    # The device answers once it is up (retained availability tells the officer tools its site).
    def ready() -> bool:
        off.inspection("ready", CASE, "--json")
        return off.show(received)["inspection"]["readiness"] is not None

    assert wait_until(ready, timeout=60, step=1.0)
    started = off.inspection("start", CASE, "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["seq"] is not None
    # The plain `cmd` tool reaches the same device commands.
    labelled = officer("cmd", DEVICE, "snapshot", "--label", "other", "--note", "via cmd", "--broker", off.broker,
                       "--site", SITE, "--keys", str(off.keys), "--json")
    assert labelled.returncode == 0, labelled.stdout + labelled.stderr
    assert json.loads(labelled.stdout)["result"]["label"] == "other"
    loc = off.inspection("checkin", CASE, "location", "--json")
    assert loc.returncode == 0, loc.stdout + loc.stderr
    assert json.loads(loc.stdout)["details"]["location"]["inside"] is True
    for step in ("identity_document", "power_of_attorney", "credentials"):
        r = off.inspection("checkin", CASE, step, "--note", f"{step} shown to the camera")
        assert r.returncode == 0, r.stdout + r.stderr
    assert off.inspection("mark", CASE, "--note", "inputs store: 40 bags of urea").returncode == 0
    # The agent restarts mid-inspection: the open case comes back from its own chain.
    off.restart_agent()  # type: ignore[attr-defined]
    again = json.loads(started.stdout)["seq"]

    def answers() -> bool:
        res = officer("cmd", DEVICE, "inspection.start", "--args", json.dumps(
            {"case": CASE, "enterprise": "Green Fields Ltd"}), "--broker", off.broker, "--site", SITE, "--keys",
            str(off.keys), "--json", "--timeout", "3")
        return res.returncode == 0 and json.loads(res.stdout)["result"] == {"case": CASE, "seq": again,
                                                                            "already_open": True}

    assert wait_until(answers, timeout=60, step=1.0)
    restarts = [json.loads(p.read_bytes().split(b"\n")[0]) for p in
                sorted((tmp_path / "vault" / "items").rglob("*.restart.rec"))]
    assert restarts[-1]["extra"]["inspection"] == {"case": CASE, "start_seq": again}
    # The clip covers the lens 45-53 s after the agent started: the device seals it, the officer sees an alert.
    assert wait_until(lambda: any(a["type"] in ("too_dark", "uniform") for a in off.show(received)["alerts"]),
                      timeout=90, step=1.0), off.show(received)["alerts"]
    assert off.inspection("decision", CASE, "continue", "--reason", "lens uncovered when asked").returncode == 0
    gps.position = OUTSIDE
    time.sleep(3)
    outside = off.inspection("checkin", CASE, "location", "--note", "re-check after the camera moved", "--json")
    assert outside.returncode == 1  # not confirmed: the device is outside the registered site
    assert json.loads(outside.stdout)["details"]["location"]["inside"] is False
    assert off.inspection("decision", CASE, "shift_to_onsite", "--reason",
                          "device left the registered site").returncode == 0
    assert off.inspection("end", CASE).returncode == 0
    out = tmp_path / "report"
    rep = off.inspection("report", CASE, "--evidence", str(received), "--out", str(out), "--wait", "60",
                         timeout=240)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    built = json.loads(rep.stdout)
    assert built["verified"] and built["sealed_seq"] is not None, built
    bundle = Path(built["bundle"])

    verified = run("agent.device.cli", "verify", str(bundle), "--json", "--ca",
                   str(tmp_path / "device-keys" / "ca.pem"), "--officer-ca", str(tmp_path / "officer-keys" / "ca.pem"))
    assert verified.returncode == 0, verified.stdout
    vj = json.loads(verified.stdout)
    assert vj["report"]["signature_valid"] and vj["report"]["officer"] == "officer-alice"
    assert vj["report"]["officer_trusted"] and vj["trusted"]
    no_officer_ca = run("agent.device.cli", "verify", str(bundle), "--ca", str(tmp_path / "device-keys" / "ca.pem"))
    assert no_officer_ca.returncode == 3, no_officer_ca.stdout  # the report part is not trusted
    assert vj["report"]["items_present"] == vj["report"]["items_listed"] == built["items"]
    assert vj["report"]["sealed_at_seq"] == built["sealed_seq"]
    assert vj["kinds"]["inspection_start"] == vj["kinds"]["inspection_end"] == 1 and vj["kinds"]["decision"] == 2

    html = Path(built["html"]).read_text()
    for needle in ("Representative&#39;s identity document", "Power of attorney", "Officers&#39; credentials",
                   "ALERT", "(too_dark)", "Shift to an on-site inspection", "lens uncovered when asked", "<svg",
                   "VERIFIED", "Check-in stills at full size"):
        assert needle in html, needle
    assert Path(built["pdf"]).read_bytes().startswith(b"%PDF")

    assert ">shift_to_onsite<" not in html and built["version"] == 1 and bundle.name.endswith("-v1-bundle.zip")

    # Built again: refused without a reason (one line, nothing sent), then version 2 naming version 1.
    no_reason = off.inspection("report", CASE, "--evidence", str(received), "--out", str(out))
    assert no_reason.returncode == 2 and "give the reason (--reason TEXT)" in no_reason.stderr, no_reason.stderr
    assert "Traceback" not in no_reason.stderr
    rep2 = off.inspection("report", CASE, "--evidence", str(received), "--out", str(out), "--wait", "60",
                          "--reason", "power of attorney re-read at full size", timeout=240)
    assert rep2.returncode == 0, rep2.stdout + rep2.stderr
    built2 = json.loads(rep2.stdout)
    assert built2["version"] == 2 and built2["supersedes"] == built["manifest_sha256"]
    assert built2["sealed_seq"] > built["sealed_seq"] and bundle.exists() and Path(built["pdf"]).exists()
    bundle2 = Path(built2["bundle"])
    assert bundle2.name.endswith("-v2-bundle.zip") and bundle2 != bundle
    verified2 = run("agent.device.cli", "verify", str(bundle2), "--ca", str(tmp_path / "device-keys" / "ca.pem"),
                    "--officer-ca", str(tmp_path / "officer-keys" / "ca.pem"))
    assert verified2.returncode == 0, verified2.stdout
    assert f"report version 2: supersedes manifest {built['manifest_sha256'][:16]}… (sealed at seq " \
           f"{built['sealed_seq']}); reason: power of attorney re-read at full size" in verified2.stdout
    v2 = json.loads(run("agent.device.cli", "verify", str(bundle2), "--json").stdout)["report"]
    assert v2["version"] == 2 and v2["supersedes"] == built["manifest_sha256"]
    assert v2["superseded_sealed_at_seq"] == built["sealed_seq"] and v2["sealed_at_seq"] == built2["sealed_seq"]
    assert "Report version 2 of case" in Path(built2["html"]).read_text()
    shown = off.show(received)["inspection"]
    assert shown["report"]["version"] == 2 and shown["report"]["history"][0]["version"] == 1

    tampered = tmp_path / "tampered.zip"
    _rewrite(bundle, tampered, "report/report.pdf", lambda b: b.replace(b"/Type", b"/Typo", 1))
    bad = json.loads(run("agent.device.cli", "verify", str(tampered), "--json").stdout)
    assert not bad["ok"] and any(p["item"] == "report/report.pdf" for p in bad["problems"]), bad["problems"]

    still = next(n for n in zipfile.ZipFile(bundle).namelist() if n.endswith(".still.jpg"))
    missing = tmp_path / "missing.zip"
    _rewrite(bundle, missing, still, None)
    bad = json.loads(run("agent.device.cli", "verify", str(missing), "--json").stdout)
    assert not bad["ok"] and any("missing" in p["problem"] for p in bad["problems"]), bad["problems"]


def _rewrite(src: Path, dst: Path, member: str, change: Any) -> None:
    """Copy a zip, altering (``change(bytes) -> bytes``) or dropping (``change=None``) one member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == member:
                if change is None:
                    continue
                data = change(data)
            zout.writestr(info, data)

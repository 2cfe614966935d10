"""A camera outage and a device restart during an open inspection are alerts: `evidence-agent run` with an HTTP
MJPEG camera the test unplugs, `evidence-officer ingest` and `evidence-officer inspection show --evidence` (the
console's inspection page and the report's timeline read the same alert list)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.support.broker import Mosquitto
from tests.support.helpers import REPO, wait_until

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
CASE, DEVICE, SITE = "C-2026/0077", "cam-outage", "depot-3"
POLYGON = "31.2299,121.4732;31.2299,121.4742;31.2309,121.4742;31.2309,121.4732"


class MjpegCamera:
    """An IP camera serving MJPEG over HTTP; unplugged, it drops the stream and refuses new ones."""

    def __init__(self) -> None:
        self.unplugged = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if camera.unplugged.is_set():
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not camera.unplugged.is_set():
                        img = np.zeros((120, 160, 3), np.uint8)
                        cv2.circle(img, (10 + i * 3 % 140, 60), 8, (0, 200, 255), -1)
                        img[:, :, 1] = np.random.default_rng(i).integers(0, 40, (120, 160), dtype=np.uint8)
                        jpg = cv2.imencode(".jpg", img)[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                         % (len(jpg), jpg))
                        i += 1
                        time.sleep(0.1)
                except OSError:
                    pass

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="mjpeg-camera", daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"

    def close(self) -> None:
        self.unplugged.set()
        self.server.shutdown()
        self.server.server_close()


def run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, cwd=REPO)


@pytest.fixture
def site(plain_mosquitto: Mosquitto, tmp_path: Path) -> Iterator[dict[str, Any]]:
    camera = MjpegCamera()
    assert run("agent.device.cli", "keys", "init", "--key-dir", str(tmp_path / "device-keys"),
               "--device-id", DEVICE).returncode == 0
    res = run("agent.customs.cli", "keys", "init", "--dir", str(tmp_path / "officer-keys"), "--officer-id",
              "officer-alice")
    assert res.returncode == 0, res.stderr
    (tmp_path / "officers").mkdir()
    shutil.copy(tmp_path / "officer-keys" / "officer.pem", tmp_path / "officers" / "officer-alice.pem")
    (tmp_path / "officers" / "permissions.json").write_text('{"officer-alice": ["*"]}')  # grants only what it lists
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f"""
[device]
id = "{DEVICE}"
site_id = "{SITE}"
[identity]
key_dir = "{tmp_path / 'device-keys'}"
[vault]
path = "{tmp_path / 'vault'}"
[capture]
backend = "opencv"
source = "{camera.url}"
width = 160
height = 120
fps = 10
still_interval_s = 2
[video]
enabled = false
[anchor]
enabled = false
[uplink]
enabled = true
outbox_path = "{tmp_path / 'outbox.sqlite'}"
[uplink.mqtt]
broker = "{plain_mosquitto.url}"
client_id = "{DEVICE}"
[uplink.commands]
trust_dir = "{tmp_path / 'officers'}"
""")
    received = tmp_path / "received"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", plain_mosquitto.url,
                               "--out", str(received), "--client-id", "ingest-outage"], env=ENV, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=(logs / "ingest.log").open("w"))]

    def start_agent() -> None:
        procs.append(subprocess.Popen([sys.executable, "-m", "agent.device.cli", "run", "--config", str(cfg)],
                                      env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=(logs / "agent.log").open("a")))

    def restart_agent() -> None:
        agent = procs.pop()
        agent.terminate()
        agent.wait(60)  # exit 1: its run summary names the camera outage
        start_agent()

    start_agent()
    try:
        yield {"camera": camera, "received": received, "restart_agent": restart_agent, "tmp": tmp_path,
               "broker": plain_mosquitto.url, "logs": logs}
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        camera.close()


def inspection(s: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    sub, rest = args[0], args[1:]
    conn = [] if sub == "show" or (sub == "open" and "--scheduled" not in rest) else [
        "--broker", s["broker"], "--keys", str(s["tmp"] / "officer-keys")]
    return run("agent.customs.cli", "inspection", "--data", str(s["tmp"] / "console"), sub, *rest, *conn)


def alerts(s: dict[str, Any]) -> list[dict[str, Any]]:
    res = inspection(s, "show", CASE, "--evidence", str(s["received"]), "--json")
    assert res.returncode == 0, res.stderr
    found: list[dict[str, Any]] = json.loads(res.stdout).get("alerts", [])
    return found


def test_camera_outage_and_restart_during_an_open_case_are_alerts(site: dict[str, Any]) -> None:
    s = site
    opening = ("--enterprise", "Depot Ltd", "--device", DEVICE, "--site", SITE, "--polygon", POLYGON)
    past = inspection(s, "open", CASE, *opening, "--scheduled", "2020-01-01T09:00:00+08:00")
    assert past.returncode == 2 and "scheduled: 2020-01-01T01:00:00Z is in the past" in past.stderr, past.stderr
    assert len(past.stderr.strip().splitlines()) == 1
    # advance notice from the command line: the case opens even if the device is not up yet (exit 1, recorded)
    res = inspection(s, "open", CASE, *opening, "--scheduled", "2099-01-01T09:00:00+08:00")
    assert res.returncode == 2 and "more than 365 days ahead" in res.stderr, res.stderr
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).replace(microsecond=0)
    res = inspection(s, "open", CASE, *opening, "--scheduled", when.isoformat())
    assert res.returncode in (0, 1) and f"scheduled {when:%Y-%m-%dT%H:%M:%SZ}" in res.stdout, res.stdout + res.stderr
    assert wait_until(lambda: "advance notice delivered" in inspection(s, "show", CASE).stdout
                      or (inspection(s, "notice", CASE).returncode == 0), timeout=60, step=1.0)
    shown = inspection(s, "show", CASE).stdout
    assert f"scheduled: {when:%Y-%m-%dT%H:%M:%SZ}; advance notice delivered" in shown, shown
    assert wait_until(lambda: inspection(s, "start", CASE, "--json").returncode == 0, timeout=60, step=1.0), \
        (s["logs"] / "agent.log").read_text()[-3000:]
    assert alerts(s) == []

    s["camera"].unplugged.set()  # the camera's cable is pulled mid-inspection
    assert wait_until(lambda: any(a["type"] == "camera_lost" for a in alerts(s)), timeout=90, step=1.0), \
        (s["logs"] / "agent.log").read_text()[-3000:]
    s["camera"].unplugged.clear()

    s["restart_agent"]()  # the agent restarts mid-inspection (a service restart, same boot)
    assert wait_until(lambda: any(a["type"] == "restart" for a in alerts(s)), timeout=90, step=1.0), \
        (s["logs"] / "agent.log").read_text()[-3000:]
    restart = next(a for a in alerts(s) if a["type"] == "restart")
    assert restart["details"]["rebooted"] is False and restart["details"]["silent_s"] >= 0
    assert restart["summary"].startswith("the agent restarted (same boot) after ")
    lost = next(a for a in alerts(s) if a["type"] == "camera_lost")
    assert "stopped delivering frames" in lost["details"]["details"] and "camera" in lost["advice"]
    text = inspection(s, "show", CASE, "--evidence", str(s["received"]))
    assert f"ALERT seq {restart['seq']} restart" in text.stdout and "camera_lost" in text.stdout

"""The README's main job with a broker: demo --broker publishes, the officer's ingest receives and verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.broker import Mosquitto, free_port
from tests.support.helpers import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def run(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, cwd=REPO)


def test_demo_publishes_everything_and_ingest_verifies_it(plain_mosquitto: Mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "received"
    ingest = subprocess.Popen([sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", plain_mosquitto.url,
                               "--out", str(out), "--idle", "6", "--client-id", "ingest-test",
                               "--report", str(tmp_path / "report.json")],
                              env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        vault = tmp_path / "vault"
        res = run("agent.device.cli", "demo", "--vault", str(vault), "--seconds", "3", "--still-interval", "0.5",
                  "--device-id", "cam-demo", "--broker", plain_mosquitto.url)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "uplink: all delivered" in res.stdout and "verify: OK" in res.stdout
        ingest.communicate(timeout=60)
    finally:
        ingest.kill()
    report = json.loads((tmp_path / "report.json").read_text())["devices"]["cam-demo"]
    assert report["missing"] == [] and report["incomplete"] == []
    device_side = json.loads(run("agent.device.cli", "verify", str(vault), "--json").stdout)
    officer_side = json.loads(run("agent.device.cli", "verify", str(out / "cam-demo"), "--json").stdout)
    assert officer_side["ok"] and officer_side["items"] == device_side["items"]
    assert officer_side["kinds"] == device_side["kinds"]


def test_demo_without_reachable_broker_says_so_and_keeps_evidence(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    res = run("agent.device.cli", "demo", "--vault", str(vault), "--seconds", "2", "--broker",
              f"mqtt://127.0.0.1:{free_port()}", "--drain-timeout", "2")
    assert res.returncode == 1
    assert "NOT all delivered" in res.stdout
    assert run("agent.device.cli", "verify", str(vault), "--allow-untrusted").returncode == 0

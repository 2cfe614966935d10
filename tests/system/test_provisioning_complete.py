"""Provisioning that cannot be half-done, through the commands a technician types.

Before: ``provision --camera opencv`` wrote a config without a camera source, ``check-config`` said OK and the
self-test crashed with CaptureError; ``check-config`` alone took its file positionally; ``inspection --help``
listed ``alerts`` (no such subcommand) and its session folder was not the console's; no tool wrote a
console.toml (and the documented file names were not what broker-setup wrote).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent.signing.keys import init_identity, make_ca
from tests.support.broker import MOSQUITTO, free_port
from tests.support.fleet import ENV, agent_cli, officer_cli
from tests.support.helpers import REPO


def _config(tmp_path: Path, capture: str) -> Path:
    example = agent_cli("example-config")
    assert example.returncode == 0, example.stderr
    init_identity(tmp_path / "keys", "cam-0001", "Example Enterprise Ltd")
    text = example.stdout.replace('"/var/lib/evidence-agent/keys"', f'"{tmp_path / "keys"}"')
    text, n = re.subn(r'(?m)^backend = "synthetic".*$', capture, text, count=1)
    assert n == 1, "the example config has no synthetic camera backend line"
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_check_config_refuses_a_camera_backend_without_its_source(tmp_path: Path) -> None:
    bad = _config(tmp_path, 'backend = "opencv"')
    for args in (["check-config", "--config", str(bad)], ["check-config", str(bad)]):
        res = agent_cli(*args)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "capture" in res.stderr and "source" in res.stderr and "Traceback" not in res.stderr
    run = agent_cli("run", "--config", str(bad), "--seconds", "1")
    assert run.returncode == 2 and "capture" in run.stderr


def test_check_config_takes_config_like_run_and_the_old_form_points_to_it(tmp_path: Path) -> None:
    good = _config(tmp_path, 'backend = "synthetic"')
    new = agent_cli("check-config", "--config", str(good))
    assert new.returncode == 0 and "OK" in new.stdout and "old form" not in new.stderr, new.stderr
    old = agent_cli("check-config", str(good))
    assert old.returncode == 0 and f"check-config --config {good}" in old.stderr
    none = agent_cli("check-config")
    assert none.returncode == 2 and "--config FILE" in none.stderr and "Traceback" not in none.stderr


def test_provision_refuses_opencv_without_a_source_and_writes_nothing(tmp_path: Path) -> None:
    ca = tmp_path / "broker-ca.pem"
    _, cert = make_ca("Broker CA", "Customs")
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    root = tmp_path / "image"
    base = ["provision", "--site", "site-1", "--broker", "mqtts://broker.example:8883", "--ca", str(ca),
            "--device-id", "cam-7", "--root", str(root), "--dev-ca", "--camera", "opencv"]
    refused = agent_cli(*base)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--camera-source" in refused.stderr and "Traceback" not in refused.stderr
    assert not root.exists() or not any(root.rglob("*")), list(root.rglob("*"))
    ok = agent_cli(*base, "--camera-source", "rtsp://10.0.0.5/stream1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert 'source = "rtsp://10.0.0.5/stream1"' in (root / "etc/evidence-agent/agent.toml").read_text()


def test_inspection_help_lists_only_real_subcommands_and_shares_the_console_folder(tmp_path: Path) -> None:
    helptext = officer_cli("inspection", "--help")
    assert helptext.returncode == 0
    sub = helptext.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    described = [line.split()[1] for line in helptext.stdout.splitlines() if line.strip().startswith("inspection ")]
    for word in described:
        for name in word.split("|"):
            assert name in sub, f"--help describes `inspection {name}`, which does not exist"
    console = tmp_path / "console"
    console.mkdir()
    (console / "console.toml").write_text('[broker]\nurl = "mqtt://localhost:1"\n[officer]\nkeys = "k"\n')
    opened = officer_cli("inspection", "--console-config", str(console / "console.toml"), "open", "C-1",
                         "--enterprise", "E", "--device", "cam-1", "--site", "site-1",
                         "--polygon", "0,0;0,1;1,1")
    assert opened.returncode == 0, opened.stderr
    assert list((console / "console-data").iterdir())  # the console's [inspections] data default
    listed = subprocess.run([sys.executable, "-m", "agent.customs.cli", "inspection", "list"], cwd=console,
                            env={**ENV, "EVIDENCE_CONSOLE_DATA": ""}, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "C-1" in listed.stdout, listed.stdout + listed.stderr


def test_broker_setup_console_writes_a_console_that_runs(tmp_path: Path) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    out, port = tmp_path / "broker", free_port()
    res = officer_cli("broker-setup", str(out), "--port", str(port), "--bind", "127.0.0.1",
                      "--console", "officer-alice")
    assert res.returncode == 0, res.stderr
    folder = out / "console-officer-alice"
    toml = (folder / "console.toml").read_text()
    for name in ("broker-ca.pem", "officer-tls.crt", "officer-tls.key", "device-ca.pem", "officer-keys"):
        assert f'"{name}"' in toml and (folder / name).exists(), name  # the names docs/console.md uses
    assert "officer-tls.crt" in (REPO / "docs" / "console.md").read_text()
    assert oct(os.stat(folder / "officer-tls.key").st_mode & 0o777) == "0o600"
    toml = toml.replace("port = 8470", f"port = {free_port()}")
    (folder / "console.toml").write_text(toml)
    broker = subprocess.Popen([MOSQUITTO, "-c", str(out / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    log = (tmp_path / "console.log").open("wb")
    console = subprocess.Popen([sys.executable, "-m", "agent.customs.cli", "console", "--config",
                                str(folder / "console.toml")], cwd=REPO, env=ENV, stdout=log, stderr=log)
    try:
        port_line = next(line for line in toml.splitlines() if line.startswith("port ="))
        url = f"http://127.0.0.1:{port_line.split('=')[1].strip()}/api/devices"
        deadline = time.monotonic() + 60
        while True:
            assert console.poll() is None, (tmp_path / "console.log").read_text()
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    doc = json.loads(r.read())
                if doc["connected"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "console.log").read_text()
            time.sleep(0.2)
    finally:
        console.terminate()
        console.wait(20)
        broker.terminate()
        broker.wait(10)

"""docs/fleet-admin.md as written: every ``sh`` block, in order, through the real CLIs and a real Mosquitto.

What a fresh test machine cannot have is mapped, nothing else: ``/srv`` lives in a temporary folder, the broker
host is ``localhost`` on a free port, ``sudo`` is dropped, the device's ``provision`` runs under ``--root``
(its ``/var/lib`` and ``/etc`` paths follow), and ``systemctl restart|reload mosquitto`` restarts or SIGHUPs
the broker this test runs from the page's ``broker-setup`` output.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.broker import MOSQUITTO, free_port
from tests.support.fleet import ENV
from tests.support.helpers import REPO

DOC = REPO / "docs" / "fleet-admin.md"


def commands(text: str) -> list[str]:
    """Each command of each ``sh`` block (continuation lines joined)."""
    out: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        out += [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]
    return out


class Broker:
    def __init__(self, conf: Path, port: int) -> None:
        self.conf, self.port = conf, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.stop()
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            assert self.proc.poll() is None, (self.conf.parent / "mosquitto.log").read_text(errors="replace")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not start"
                time.sleep(0.1)

    def reload(self) -> None:
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def test_the_administrators_day_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    port, device_root = free_port(), tmp_path / "device"
    text = DOC.read_text()
    text = (text.replace("/srv/", f"{tmp_path}/srv/").replace("broker.customs.example:8883", f"localhost:{port}")
            .replace("--host broker.customs.example --port 8883", f"--host localhost --port {port} "
                     "--bind 127.0.0.1")
            .replace("/var/lib/evidence-agent/", f"{device_root}/var/lib/evidence-agent/")
            .replace("sudo evidence-agent provision", f"evidence-agent provision --root {device_root}"))
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}:{ENV['PATH']}"}
    work = tmp_path / "admin-desk"
    work.mkdir()
    broker = Broker(tmp_path / "srv" / "broker" / "mosquitto.conf", port)
    ran = 0
    try:
        for cmd in commands(text):
            if cmd.startswith("sudo systemctl"):
                (broker.reload if " reload " in cmd else broker.start)()
                continue
            if cmd.startswith("export "):
                for assignment in shlex.split(cmd)[1:]:
                    name, value = assignment.split("=", 1)
                    env[name] = value
                continue
            res = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True,
                                 timeout=180)
            assert res.returncode == 0, f"{cmd}\n{res.stdout}{res.stderr}"
            assert "Traceback" not in res.stderr, res.stderr
            ran += 1
    finally:
        broker.stop()
    assert ran >= 15
    published = sorted((tmp_path / "srv" / "fleet-admin" / "published").glob("v*.json"))
    assert len(published) == 3  # officer added, officer removed, after the certificate rotation
    assert (device_root / "etc" / "evidence-agent" / "fleet-admin.pem").exists()
    assert (tmp_path / "srv" / "broker" / "server.old" / "server.pem").exists()

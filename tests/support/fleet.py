"""A customs broker built exactly as an operator would: ``evidence-officer broker-setup`` then Mosquitto
started from its mosquitto.conf (TLS, CN = identity, the shipped least-privilege ACL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from agent.wire.mqtt import MqttLink
from agent.wire.mqtt_settings import MqttConfig, TlsConfig
from tests.support.broker import MOSQUITTO, free_port
from tests.support.helpers import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
OFFICERS = ("officer-alice",)
INGESTS = ("ingest-1",)
SITE = "site-1"  # every fleet device is registered here (tests.support.hostile.SITE)


def officer_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.customs.cli", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def agent_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.device.cli", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


class Fleet:
    """broker-setup output in ``root`` plus the running broker."""

    def __init__(self, root: Path, devices: tuple[str, ...], site: str = SITE) -> None:
        self.root = root
        self.port = free_port()
        args = ["broker-setup", str(root), "--port", str(self.port), "--bind", "127.0.0.1", "--org", "Test Customs"]
        for o in OFFICERS:
            args += ["--officer", o]
        for i in INGESTS:
            args += ["--ingest", i]
        for d in devices:
            args += ["--device", f"{d}={site}"]
        res = officer_cli(*args)
        if res.returncode != 0:
            raise RuntimeError(f"broker-setup failed: {res.stdout}{res.stderr}")
        self.ca = root / "ca" / "ca.pem"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.root / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.root / 'mosquitto.log').read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.port}"

    def cert_files(self, identity: str) -> tuple[Path, Path]:
        """(certificate, key) of an account or device."""
        if identity in OFFICERS or identity in INGESTS:
            return self.root / "clients" / f"{identity}.pem", self.root / "clients" / f"{identity}.key"
        return self.root / "devices" / identity / "device.pem", self.root / "devices" / identity / "device.key"

    def key_dir(self, device: str) -> Path:
        return self.root / "devices" / device

    def mqtt_config(self, identity: str, client_id: str | None = None, **kw: object) -> MqttConfig:
        cert, key = self.cert_files(identity)
        return MqttConfig.model_validate({
            "broker": self.url, "client_id": client_id or identity,
            "tls": TlsConfig(ca_file=self.ca, cert_file=cert, key_file=key),
            "reconnect_min_s": 1.0, "reconnect_max_s": 2.0, **kw})

    def link(self, identity: str, client_id: str | None = None) -> MqttLink:
        link = MqttLink(self.mqtt_config(identity, client_id), name=identity)
        link.start()
        if not link.wait_connected(10):
            raise RuntimeError(f"{identity} could not connect: {link.last_error}")
        return link

    def tls_args(self, identity: str) -> list[str]:
        cert, key = self.cert_files(identity)
        return ["--cafile", str(self.ca), "--cert", str(cert), "--key", str(key)]

    def wait_client(self, client_id: str, timeout: float = 20.0) -> None:
        """Until the broker logged ``client_id`` connecting (plus a moment for its subscriptions)."""
        log = self.root / "mosquitto.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and f" as {client_id} " in log.read_text(errors="replace"):
                time.sleep(1.0)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{client_id} did not connect to the broker")

    def ingest(self, out: Path, *extra: str, idle: float = 5.0, client_id: str = "ingest-sec"
               ) -> subprocess.Popen[str]:
        """The real ``evidence-officer ingest`` process, trusting the fleet CA; its log goes to ingest.log."""
        args = [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", self.url, "--out", str(out),
                *self.tls_args("ingest-1"), "--trust-ca", str(self.ca), "--client-id", client_id,
                "--idle", str(idle), "--report", str(out.parent / "ingest-report.json"), *extra]
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.parent / "ingest.log", "w") as log:  # a flood of refusals must not fill a pipe
            proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=log, text=True)
        self.wait_client(client_id)
        return proc

"""The officer console end to end: Mosquitto with TLS, a real device process, the console process, Chromium.

Used by tests/console and benchmarks/console_latency.py. The device runs ``evidence-agent run --config``
(synthetic camera, simulated GPS) with its own mTLS identity; the console runs
``evidence-officer console --config``; the browser is Debian's chromium driven by Playwright.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from agent.customs.keys import init_officer
from agent.signing.keys import CERT_FILE, init_identity, load_identity
from tests.support.broker import ClientCert, Mosquitto, free_port
from tests.support.helpers import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                 "--mute-audio"]
OFFICERS = ("officer-alice", "officer-bob")
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def need_browser() -> None:
    """Skip with the reason when the system browser or Playwright is missing (nothing is downloaded)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); the console tests need a real browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright (Python package) not installed")
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.skip("mosquitto not installed")


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig_kill: bool = False) -> None:
        if self.proc.poll() is None:
            (self.proc.kill if sig_kill else self.proc.terminate)()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def spawn(name: str, args: list[str], log: Path) -> Proc:
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return Proc(name, proc, log)


class SetupBroker:
    """The broker an operator builds (``evidence-officer broker-setup``, then Mosquitto from its config: TLS, CN =
    identity, the registered devices bound to their site) in the shape ConsoleStack uses (``url``, ``pki.client``,
    ``stop``). Accounts: officer-alice, ingest-1 and the devices given."""

    def __init__(self, root: Path, devices: dict[str, str]) -> None:
        from tests.support.fleet import Fleet

        sites = set(devices.values())
        assert len(sites) == 1, "broker-setup here registers every device at one site"
        self.fleet = Fleet(root, tuple(devices), site=sites.pop())
        self.fleet.start()
        self.pki = self

    @property
    def url(self) -> str:
        return self.fleet.url

    def client(self, identity: str) -> ClientCert:
        cert, key = self.fleet.cert_files(identity)
        return ClientCert(identity, cert, key, self.fleet.ca)

    def stop(self) -> None:
        self.fleet.stop()


@dataclass
class ConsoleStack:
    root: Path
    broker: Mosquitto | SetupBroker
    trust: Path
    officer_dirs: dict[str, Path]
    device_ca: Path
    procs: list[Proc] = field(default_factory=list)

    def device_config(self, device: str, site: str, *, width: int = 1280, height: int = 720, fps: float = 15,
                      overlay: bool = True, video: bool = True, live: dict[str, Any] | None = None,
                      extra_toml: str = "", sensor: tuple[int, int] | None = None) -> Path:
        base = self.root / device
        keys = base / "keys"
        if not (keys / CERT_FILE).exists():
            init_identity(keys, device, "Test Enterprise")
        tls = self.broker.pki.client(device)  # type: ignore[union-attr]
        live_lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in (live or {}).items())
        text = f"""
[device]
id = "{device}"
site_id = "{site}"
[identity]
key_dir = "{keys}"
[vault]
path = "{base / 'vault'}"
[capture]
backend = "synthetic"
width = {width}
height = {height}
fps = {fps}
still_interval_s = 3600
{f"sensor_width = {sensor[0]}{chr(10)}sensor_height = {sensor[1]}" if sensor else ""}
[gps]
source = "simulated"
[video]
enabled = {str(video).lower()}
segment_seconds = 10
overlay = {str(overlay).lower()}
[anchor]
enabled = false
[uplink]
enabled = true
outbox_path = "{base / 'outbox.sqlite'}"
require_subscriber = false
status_interval_s = 2
[uplink.mqtt]
broker = "{self.broker.url}"
client_id = "{device}"
reconnect_min_s = 1
reconnect_max_s = 2
[uplink.mqtt.tls]
ca_file = "{tls.ca}"
cert_file = "{tls.cert}"
key_file = "{tls.key}"
[uplink.commands]
trust_dir = "{self.trust}"
[uplink.live]
keepalive_timeout_s = 6
{live_lines}
{extra_toml}"""
        path = base / "agent.toml"
        path.write_text(text)
        # the console checks device certificates against this device's development CA
        with self.device_ca.open("ab") as f:
            f.write(load_identity(keys).chain[-1].public_bytes(serialization.Encoding.PEM))
        return path

    def start_device(self, config: Path) -> Proc:
        p = spawn(config.parent.name, ["agent.device.cli", "run", "--config", str(config)],
                  config.parent / "agent.log")
        self.procs.append(p)
        return p

    def start_ingest(self, *, index: bool = False, extra: tuple[str, ...] = ()) -> Path:
        """``evidence-officer ingest`` as identity ingest-1 into ROOT/received (and ROOT/index.sqlite with
        ``index``); returns once its subscriptions are in place (its log says so), so a device started after
        it never publishes to nobody."""
        tls = self.broker.pki.client("ingest-1")  # type: ignore[union-attr]
        received = self.root / "received"
        args = ["agent.customs.cli", "ingest", "--broker", self.broker.url, "--cafile", str(tls.ca), "--cert",
                str(tls.cert), "--key", str(tls.key), "--out", str(received), "--client-id", "ingest-1", *extra]
        if index:
            args += ["--index", str(self.root / "index.sqlite")]
        p = spawn("ingest", args, self.root / "ingest.log")
        self.procs.append(p)
        deadline = time.monotonic() + 120
        while "ingest-1: subscriptions in place" not in p.text():
            if p.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the ingest did not subscribe (exit {p.proc.poll()}): {p.text()[-2000:]}")
            time.sleep(0.1)
        return received

    def start_console(self, officer: str = "officer-alice", extra_toml: str = "", **live: Any) -> tuple[Proc, str]:
        tls = self.broker.pki.client(officer)  # type: ignore[union-attr]
        port = free_port()
        live_lines = "".join(f"{k} = {v}\n" for k, v in live.items())
        cfg = self.root / f"console-{officer}.toml"
        cfg.write_text(f"""
[broker]
url = "{self.broker.url}"
ca_file = "{tls.ca}"
cert_file = "{tls.cert}"
key_file = "{tls.key}"
[officer]
keys = "{self.officer_dirs[officer]}"
device_ca = "{self.device_ca}"
[listen]
port = {port}
[live]
{live_lines}
{extra_toml}""")
        p = spawn(f"console-{officer}", ["agent.customs.cli", "console", "--config", str(cfg)],
                  self.root / f"console-{officer}.log")
        self.procs.append(p)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if p.proc.poll() is not None:
                raise RuntimeError(f"console exited {p.proc.returncode}: {p.text()}")
            try:
                with urllib.request.urlopen(url + "/api/devices", timeout=1):
                    return p, url
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"console did not answer on {url}: {p.text()}")

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.broker.stop()


def build_console_stack(root: Path, broker_setup: dict[str, str] | None = None) -> ConsoleStack:
    """Broker, officer keys and the device trust folder. ``broker_setup`` (device -> site): the broker comes from
    ``evidence-officer broker-setup`` (one officer account: officer-alice) instead of the test PKI."""
    broker: Mosquitto | SetupBroker
    if broker_setup is not None:
        broker = SetupBroker(root / "broker", broker_setup)
    else:
        broker = Mosquitto(root / "broker", officers=OFFICERS)
        broker.start()
    trust = root / "trust"
    trust.mkdir(parents=True)
    dirs = {}
    for name in OFFICERS:
        key = init_officer(root / "officers" / name, name)
        (trust / f"{name}.pem").write_bytes(key.cert.public_bytes(serialization.Encoding.PEM))
        dirs[name] = root / "officers" / name
    (trust / "permissions.json").write_text(json.dumps({name: ["*"] for name in OFFICERS}))
    device_ca = root / "device-ca.pem"
    device_ca.write_bytes(b"")
    return ConsoleStack(root, broker, trust, dirs, device_ca)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian chromium through Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

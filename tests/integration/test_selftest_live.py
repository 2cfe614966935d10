"""Provision a device against a real Mosquitto (mutual TLS, customs CA), then self-test it with the
synthetic camera and gpsd fed by gpsfake: passes; broker down, untrusted certificate or missing key fail and say why.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.customs.cmd_cmd import OfficerClient
from agent.customs.keys import init_officer
from agent.device.config import load_config
from agent.device.runtime import Agent
from agent.hostsetup import provision
from agent.selftest import command as selftest_cmd
from agent.signing import keys
from agent.signing.verify import verify
from agent.wire.mqtt import MqttLink
from tests.support.broker import Mosquitto, free_port
from tests.support.helpers import shared_path

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Site:
    broker: Mosquitto
    config: Path
    state: Path
    customs_ca: x509.Certificate


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    provision.register(sub)
    selftest_cmd.register(sub)
    args = parser.parse_args(list(argv))
    rc: int = args.func(args)
    return rc


@pytest.fixture(scope="module")
def gpsd_port() -> Iterator[int]:
    """gpsfake (and the gpsd it starts) replaying a steady 3D-fix log in a loop."""
    exe = shutil.which("gpsfake")
    if exe is None or (shutil.which("gpsd") is None and not Path("/usr/sbin/gpsd").exists()):
        pytest.skip("gpsfake/gpsd not installed (apt-get install gpsd gpsd-clients)")
    log = shared_path("data", "nmea", "bu353s4.log")
    port = free_port()
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin"}
    proc = subprocess.Popen([exe, "-q", "-c", "0.05", "-P", str(port), str(log)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    yield port
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def provision_device(d: Path, broker: Mosquitto, device: str, *extra: str) -> Path:
    assert broker.pki is not None
    assert cli("provision", "--site", "site-1", "--broker", broker.url, "--ca", str(broker.pki.ca),
               "--device-id", device, "--state-dir", str(d / "state"), "--config-out", str(d / "etc/agent.toml"),
               "--camera", "synthetic", "--gps", "gpsd", "--no-enable", *extra) == 0
    return d / "etc/agent.toml"


def tune(config: Path, gpsd_port: int) -> None:
    """What a technician would edit after provisioning: here, the test gpsd's port and a small picture."""
    data = tomllib.loads(config.read_text())
    data["gps"]["gpsd_port"] = gpsd_port
    data["capture"].update(width=160, height=120, fps=10)
    config.write_text(provision.to_toml(data))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, gpsd_port: int) -> Iterator[Site]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    d = tmp_path_factory.mktemp("selftest-live")
    broker = Mosquitto(d / "broker")
    assert broker.pki is not None
    customs_key, customs_ca = keys.make_ca("Customs Device CA", "Customs")
    with broker.pki.ca.open("ab") as fh:  # the broker accepts device certificates the customs CA issued
        fh.write(customs_ca.public_bytes(PEM))
    broker.start()
    config = provision_device(d, broker, "cam-live")
    csr = x509.load_pem_x509_csr((d / "state/keys/device.csr").read_bytes())
    leaf = keys.issue_leaf(customs_key, customs_ca, csr.subject, csr.public_key())  # type: ignore[arg-type]
    (d / "issued.pem").write_bytes(leaf.public_bytes(PEM))
    (d / "chain.pem").write_bytes(customs_ca.public_bytes(PEM))
    provision_device(d, broker, "cam-live", "--cert", str(d / "issued.pem"), "--chain", str(d / "chain.pem"))
    tune(config, gpsd_port)
    yield Site(broker, config, d / "state", customs_ca)
    broker.stop()


def test_selftest_passes_with_camera_gps_clock_and_broker(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli("selftest", "--config", str(site.config), "--gps-wait", "15")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "broker    PASS    mqtts://127.0.0.1:" in out and "connected over TLS with the device certificate" in out
    assert "gps       PASS    3D fix, HDOP " in out and "talker gpsd" in out
    assert "camera    WARN" in out and "SYNTHETIC" in out  # honest: a test pattern is not a camera
    assert "identity  PASS" in out and "disk      PASS" in out
    assert "clock     " in out  # PASS with chrony/NTP, WARN on an unsynchronised host: never a failure
    assert "selftest PASSED" in out and "sealed as seq 1" in out
    report = verify(site.state / "vault", trusted_ca=[site.customs_ca])
    assert report.kinds == {"restart": 1, "selftest": 1} and report.trusted_ca


def test_broker_down_fails_and_says_why(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.broker.stop()
    try:
        rc = cli("selftest", "--config", str(site.config), "--gps-wait", "15", "--broker-timeout", "5")
    finally:
        site.broker.start()
    out = capsys.readouterr().out
    assert rc == 1, out
    broker_line = next(line for line in out.splitlines() if line.startswith("broker"))
    assert "FAIL" in broker_line and "connection refused by 127.0.0.1" in broker_line
    assert "broker not running, or wrong port" in broker_line
    assert "selftest FAILED" in out and "sealed as seq" in out  # the failed test is evidence too


def test_a_certificate_the_broker_does_not_trust_fails_and_says_why(
        site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = provision_device(tmp_path, site.broker, "cam-lab", "--dev-ca")  # self-issued: unknown to the broker
    tune(config, free_port())
    rc = cli("selftest", "--config", str(config), "--gps-wait", "0", "--no-seal", "--broker-timeout", "5")
    out = capsys.readouterr().out
    assert rc == 1, out
    broker_line = next(line for line in out.splitlines() if line.startswith("broker"))
    assert "FAIL" in broker_line and "TLS handshake refused" in broker_line, broker_line


def test_missing_key_fails(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    key = site.state / "keys/device.key"
    aside = key.with_name("device.key.aside")
    key.rename(aside)
    try:
        rc = cli("selftest", "--config", str(site.config), "--gps-wait", "15", "--broker-timeout", "5")
    finally:
        aside.rename(key)
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "identity  FAIL    device key" in out and "is missing" in out
    assert next(line for line in out.splitlines() if line.startswith("broker")).split()[1] == "FAIL"
    assert "NOT sealed" in out


def test_officer_selftest_command_runs_inside_the_service_and_seals(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    """While the service runs: the command line reports without sealing; the officer's MQTT command seals."""
    cfg = load_config(site.config)
    assert cfg.uplink is not None
    alice_key = init_officer(site.state.parent / "alice", "officer-alice")
    (cfg.uplink.commands.trust_dir / "officer-alice.pem").write_bytes(alice_key.cert.public_bytes(PEM))
    (cfg.uplink.commands.trust_dir / "permissions.json").write_text('{"officer-alice": ["*"]}')
    agent = Agent(cfg)
    link = MqttLink(site.broker.mqtt_config("officer-alice", client_id=f"alice-{secrets.token_hex(3)}",
                                            session_expiry_s=0), name="alice")
    try:
        agent.start()
        assert agent.uplink is not None
        assert agent.uplink.link.wait_connected(10), agent.uplink.link.last_error
        rc = cli("selftest", "--config", str(site.config), "--gps-wait", "15")
        out = capsys.readouterr().out
        assert rc == 0 and "NOT sealed" in out and "evidence-officer cmd DEVICE selftest" in out, out
        link.start()
        assert link.wait_connected(10), link.last_error
        alice = OfficerClient(link, alice_key, device_cas=[site.customs_ca])
        reply = alice.request("site-1", "cam-live", "selftest", timeout=30)
    finally:
        link.close(offline=False)
        agent.close()
    result = reply["result"]
    assert reply["ok"] and result["passed"], result
    statuses = {c["name"]: c["status"] for c in result["checks"]}
    assert statuses["broker"] == "pass" and statuses["gps"] == "pass" and statuses["identity"] == "pass"
    sealed = result["sealed"]["seq"]
    report = verify(site.state / "vault", trusted_ca=[site.customs_ca])
    assert report.kinds["selftest"] >= 1 and report.last_seq is not None and report.last_seq >= sealed

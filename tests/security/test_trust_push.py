"""Officer trust pushed to a running device, through the real processes only.

``evidence-officer broker-setup --admin`` builds the broker; the customs CA (``ca init`` in the broker's ca/
folder) signs the device's CSR (``ca sign-csr``), issues the fleet-admin key (``ca issue-admin``) and an
officer (``ca issue-officer``); ``evidence-officer trust publish`` sends the bundle; the device is
``evidence-agent run --config`` provisioned to trust the admin certificate. Waits are on the device's
retained status (its ``trust`` version), never on sleeps.

Before: nothing carried officer trust to a device — every certificate was copied by hand into every
trust folder, and a revoked officer kept commanding every device nobody visited.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.wire.messages import Inbound
from agent.wire.topics import DeviceTopics
from agent.wire.trust_bundle import TRUST_TOPIC
from tests.support.console_stack import spawn
from tests.support.fleet import INGESTS, OFFICERS, Fleet, officer_cli
from tests.support.helpers import REPO
from tests.support.revocation import SITE, ca, enroll

DEVICE = "cam-trust"
ADMIN = "fleet-admin"


class Status:
    """The device's retained status as an ingest account sees it."""

    def __init__(self, fleet: Fleet) -> None:
        self.doc: dict[str, Any] = {}
        self.changed = threading.Condition()
        self.link = fleet.link("ingest-1", client_id="trust-watch")
        self.link.subscribe(DeviceTopics(SITE, DEVICE).status, self._on, qos=1)

    def _on(self, msg: Inbound) -> None:
        with self.changed:
            self.doc = json.loads(msg.payload)
            self.changed.notify_all()

    def wait(self, what: str, ok: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not (self.doc.get("trust") and ok(self.doc["trust"])):
                left = deadline - time.monotonic()
                assert left > 0, f"device status never showed {what}: {self.doc.get('trust')}"
                self.changed.wait(left)
            return dict(self.doc["trust"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    root = tmp_path_factory.mktemp("trust-push")
    fleet = Fleet(root / "broker", ())
    admin = root / "admin"
    ca(fleet, "issue-admin", ADMIN, "--out", str(admin))
    registry = root / "registry.toml"  # the devices that enroll below, each bound to its site by the ACL
    registry.write_text(f'[devices]\n"{DEVICE}" = "{SITE}"\n"cam-evil" = "{SITE}"\n')
    args = ["broker-setup", str(fleet.root), "--port", str(fleet.port), "--bind", "127.0.0.1", "--org",
            "Test Customs", "--admin", ADMIN, "--registry", str(registry)]
    for o in OFFICERS:
        args += ["--officer", o]
    for i in INGESTS:
        args += ["--ingest", i]
    res = officer_cli(*args)
    assert res.returncode == 0, res.stderr
    assert f"user {ADMIN}" in (fleet.root / "acl.conf").read_text()
    enroll(fleet, DEVICE)
    enroll(fleet, "cam-evil")
    fleet.start()
    config = _device_config(root / "device", fleet, admin / "admin.pem")
    device = spawn(DEVICE, ["agent.device.cli", "run", "--config", str(config)], root / "device" / "agent.log")
    status = Status(fleet)
    try:
        status.wait("the agent's first status", lambda t: t.get("version") == 0)
        yield {"fleet": fleet, "admin": admin, "root": root, "device": device, "status": status}
    finally:
        status.link.close(offline=False)
        device.stop()
        fleet.stop()
        log = device.text()
        assert "Traceback" not in log, log[-4000:]


def _device_config(base: Path, fleet: Fleet, admin_cert: Path) -> Path:
    base.mkdir(parents=True)
    keys = fleet.key_dir(DEVICE)
    state = base / "state"
    state.mkdir(mode=0o700)
    (state / "officers").mkdir()
    (state / "officers" / "permissions.json").write_text("{}")  # what provision writes: nobody yet
    text = f"""
[device]
id = "{DEVICE}"
site_id = "{SITE}"
[identity]
key_dir = "{keys}"
[vault]
path = "{state / 'vault'}"
[capture]
backend = "synthetic"
width = 160
height = 120
fps = 5
still_interval_s = 3600
[gps]
source = "simulated"
[video]
enabled = false
[anchor]
enabled = false
[uplink]
enabled = true
outbox_path = "{state / 'outbox.sqlite'}"
require_subscriber = false
status_interval_s = 5
[uplink.mqtt]
broker = "{fleet.url}"
client_id = "{DEVICE}"
reconnect_min_s = 1
reconnect_max_s = 2
[uplink.mqtt.tls]
ca_file = "{fleet.ca}"
cert_file = "{keys / 'device.pem'}"
key_file = "{keys / 'device.key'}"
[uplink.commands]
trust_dir = "{state / 'officers'}"
trust_admin = "{admin_cert}"
"""
    path = base / "agent.toml"
    path.write_text(text)
    return path


def _publish(world: dict[str, Any]) -> int:
    res = officer_cli("trust", "publish", "--admin", str(world["admin"]), "--ca-dir",
                      str(world["fleet"].root / "ca"), "--broker", world["fleet"].url)
    assert res.returncode == 0, res.stdout + res.stderr
    return int(res.stdout.split("trust version ")[1].split(":")[0])


def _cmd(world: dict[str, Any], officer: Path, command: str = "status") -> subprocess.CompletedProcess[str]:
    fleet: Fleet = world["fleet"]
    return subprocess.run(
        [sys.executable, "-m", "agent.customs.cli", "cmd", DEVICE, command, "--broker", fleet.url, "--site", SITE,
         "--keys", str(officer), "--cafile", str(fleet.ca), "--cert", str(officer / "officer.pem"),
         "--key", str(officer / "officer.key"), "--device-ca", str(fleet.ca), "--timeout", "20"],
        cwd=REPO, capture_output=True, text=True, timeout=120)


def test_an_issued_officer_commands_the_device_once_published_and_not_after_revocation(
        world: dict[str, Any]) -> None:
    fleet: Fleet = world["fleet"]
    status: Status = world["status"]
    officer = world["root"] / "officer-alice"  # an account the broker lets publish commands
    ca(fleet, "issue-officer", "officer-alice", "--legal-name", "Alice Martin", "--badge", "B-0417",
       "--out", str(officer))
    refused = _cmd(world, officer)
    assert refused.returncode != 0 and "untrusted" in refused.stdout + refused.stderr  # nothing copied by hand
    ca(fleet, "crl")
    v1 = _publish(world)
    status.wait(f"version {v1}", lambda t: t["version"] == v1 and t["officers"] == ["officer-alice"])
    ok = _cmd(world, officer)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    ca(fleet, "revoke", "officer-alice", "--reason", "privilege_withdrawn")
    ca(fleet, "crl")
    v2 = _publish(world)
    assert v2 > v1
    status.wait(f"version {v2}", lambda t: t["version"] == v2 and t["officers"] == [])
    after = _cmd(world, officer)
    assert after.returncode != 0 and "untrusted" in after.stdout + after.stderr, after.stdout + after.stderr

    # the change is sealed into the device's evidence chain
    vault = world["root"] / "device" / "state" / "vault"
    sealed = [json.loads(p.read_text().splitlines()[0]) for p in vault.rglob("*.rec")
              if b"trust_updated" in p.read_bytes()]
    versions = sorted(r["extra"]["version"] for r in sealed)
    assert versions[-2:] == [v1, v2], sealed


def test_an_older_bundle_replayed_by_the_admin_account_is_refused(world: dict[str, Any]) -> None:
    fleet: Fleet = world["fleet"]
    status: Status = world["status"]
    current = _publish(world)
    before = status.wait(f"version {current}", lambda t: t["version"] == current)
    oldest = min((world["admin"] / "published").glob("v*.json"), key=lambda p: int(p.stem[1:]))
    assert int(oldest.stem[1:]) < current
    cert, key = world["admin"] / "admin.pem", world["admin"] / "admin.key"
    from agent.wire.mqtt import MqttLink
    from agent.wire.mqtt_settings import MqttConfig, TlsConfig

    link = MqttLink(MqttConfig.model_validate({"broker": fleet.url, "client_id": "replayer",
                                               "tls": TlsConfig(ca_file=fleet.ca, cert_file=cert, key_file=key)}),
                    name="replayer")
    link.start()
    try:
        assert link.wait_connected(10), link.last_error
        assert link.publish_wait(TRUST_TOPIC, oldest.read_bytes(), qos=1, retain=True, timeout=20).ok
    finally:
        link.close(offline=False)
    after = status.wait("the replay refused", lambda t: t["refusals"] > before["refusals"])
    assert after["version"] == current and "downgrade" in after["last_refusal"]
    assert "officer trust bundle refused: downgrade" in world["device"].text()


@pytest.mark.parametrize("identity", ["cam-evil", "officer-alice", "ingest-1"])
def test_nobody_but_the_admin_account_may_publish_on_the_trust_topic(world: dict[str, Any], identity: str) -> None:
    fleet: Fleet = world["fleet"]
    link = fleet.link(identity, client_id=f"{identity}-forger")
    try:
        res = link.publish_wait(TRUST_TOPIC, b'{"forged": true}', qos=1, retain=True, timeout=20)
    finally:
        link.close(offline=False)
    assert not res.ok, f"{identity} could publish on {TRUST_TOPIC}"


def test_check_config_names_a_missing_fleet_admin_certificate(world: dict[str, Any], tmp_path: Path) -> None:
    from tests.support.fleet import agent_cli

    config = world["root"] / "device" / "agent.toml"
    ok = agent_cli("check-config", "--config", str(config))
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "agent.toml"
    broken.write_text(config.read_text().replace(str(world["admin"] / "admin.pem"), str(tmp_path / "gone.pem")))
    res = agent_cli("check-config", "--config", str(broken))
    assert res.returncode == 2 and "uplink.commands.trust_admin" in res.stderr, res.stderr

"""A device with officer commands and live view on a real Mosquitto, and officers to talk to it.

Helpers only (no tests here): the command and live test modules each build one stack on their own broker.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from agent.capture.base import CaptureSettings
from agent.capture.synthetic import SyntheticBackend
from agent.core.clock import SystemClock
from agent.core.model import GpsReading, Moment, TimeQuality
from agent.customs.cmd_cmd import OfficerClient
from agent.customs.keys import OfficerKey, init_officer
from agent.device.pipeline import FrameHub
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity, init_identity, load_identity
from agent.uplink.device_commands import DeviceCommandService
from agent.uplink.settings_commands import CommandsConfig, LiveConfig
from agent.wire.mqtt import MqttLink, Will
from agent.wire.topics import DeviceTopics
from tests.support.broker import Mosquitto

SITE, DEVICE = "site-1", "dev-1"
OFFICERS = ("officer-alice", "officer-bob", "officer-mallory")  # broker lets all three publish commands
TRUSTED = ("officer-alice", "officer-bob")  # the device trusts only these keys


def need_mosquitto() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")


@dataclass
class Stack:
    broker: Mosquitto
    root: Path
    identity: DeviceIdentity
    vault: Vault
    sealer: Sealer
    hub: FrameHub
    link: MqttLink
    service: DeviceCommandService
    officer_keys: dict[str, OfficerKey]
    links: list[MqttLink] = field(default_factory=list)

    @property
    def device_ca(self) -> Path:
        return self.root / "device-keys" / "ca.pem"

    def officer(self, name: str) -> OfficerClient:
        link = MqttLink(self.broker.mqtt_config(name, client_id=f"{name}-{secrets.token_hex(3)}",
                                                session_expiry_s=0), name=name)
        link.start()
        assert link.wait_connected(10), link.last_error
        self.links.append(link)
        return OfficerClient(link, self.officer_keys[name], device_cas=[self.identity.chain[-1]])

    def close(self) -> None:
        for link in self.links:
            link.close(offline=False)
        self.service.close()
        self.link.close()
        self.hub.close()
        self.vault.close()
        self.broker.stop()


def build_stack(root: Path, *, live: LiveConfig | None = None, fps: float = 20.0,
                size: tuple[int, int] = (160, 120), tls: bool = True) -> Stack:
    need_mosquitto()
    broker = Mosquitto(root / "broker", officers=OFFICERS, tls=tls)
    broker.start()
    init_identity(root / "device-keys", DEVICE, "Test Customs")
    identity = load_identity(root / "device-keys")
    vault = Vault(root / "vault")
    sealer = Sealer(vault, identity, device_id=DEVICE, site_id=SITE)
    clock = SystemClock()
    hub = FrameHub(SyntheticBackend(CaptureSettings(width=size[0], height=size[1], fps=fps), clock))
    hub.start()
    trust = root / "trust"
    trust.mkdir()
    keys = {name: init_officer(root / "officers" / name, name) for name in OFFICERS}
    for name in TRUSTED:
        (trust / f"{name}.pem").write_bytes(keys[name].cert.public_bytes(serialization.Encoding.PEM))
    (trust / "permissions.json").write_text(json.dumps({name: ["*"] for name in TRUSTED}))
    topics = DeviceTopics(SITE, DEVICE)
    link = MqttLink(broker.mqtt_config(DEVICE), will=Will(topics.availability, b"offline"), name="device")

    def moment() -> Moment:
        return Moment(clock.wall_ns(), clock.mono_ns(), GpsReading(fix=None, status="no fix"),
                      TimeQuality(source="unsynced", synced=False))

    def status() -> dict[str, Any]:
        return {"frames_read": hub.frames_read, "sealed_next_seq": sealer.next_seq}

    def snapshot(req: Any, args: Any = None) -> dict[str, Any]:
        label = {} if getattr(args, "label", None) is None else {"label": args.label}
        item = sealer.seal("still", moment(), media=b"\xff\xd8fake-jpeg\xff\xd9", media_type="image/jpeg",
                           ext="jpg", extra={"requested_by": req.officer, **label})
        return {"seq": item.seq}

    service = DeviceCommandService(
        link, topics, identity, clock, commands=CommandsConfig(trust_dir=trust), live=live or LiveConfig(),
        frames=hub, moment=moment, seal=sealer.seal, replay_path=root / "state" / "replay.sqlite",
        snapshot=snapshot, status=status, selftest=lambda: {"camera": "ok"},
        open_inspection=lambda: sealer.inspection)
    service.start()
    link.start()
    assert link.wait_connected(10), link.last_error
    return Stack(broker, root, identity, vault, sealer, hub, link, service, keys)


class FrameCounter:
    """Stands in for the recorder: drains its own hub subscription, proving capture goes on."""

    def __init__(self, hub: FrameHub) -> None:
        self.hub, self.count = hub, 0
        self.sub = hub.subscribe("recorder-stand-in", maxsize=64)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-counter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.sub.get(timeout=0.1) is not None:
                self.count += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.hub.unsubscribe(self.sub)

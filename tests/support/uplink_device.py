"""A test device (identity + vault + sealer + uplink) and an in-process ingest, on a real broker.

Also runnable as a child process (``python -m tests.support.uplink_device ...``) so a test can
kill -9 it with a backlog and start it again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from agent.core.clock import SystemClock
from agent.core.model import NO_GPS, Moment, SealedItem, TimeQuality
from agent.customs.cli import subscribe_ingest
from agent.customs.ingest import Ingest
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import init_identity, load_identity
from agent.uplink.service import Uplink
from agent.uplink.settings import UplinkConfig
from agent.wire.mqtt import MqttLink
from agent.wire.mqtt_settings import MqttConfig

SITE = "site-1"


def moment() -> Moment:
    clock = SystemClock()
    return Moment(wall_ns=clock.wall_ns(), mono_ns=clock.mono_ns(), gps=NO_GPS,
                  time=TimeQuality(source="ntp", synced=True))


class TestDevice:
    """Everything a device has, on disk under ``root``; reopening the same root continues the chain."""

    __test__ = False

    def __init__(self, root: Path, device_id: str, mqtt: MqttConfig, **uplink_kw: Any) -> None:
        self.root = root
        keys = root / "keys"
        if not (keys / "device.key").exists():
            init_identity(keys, device_id, "Test Customs")
        self.vault = Vault(root / "vault")
        self.uplink = Uplink(UplinkConfig(enabled=True, mqtt=mqtt, outbox_path=root / "outbox.sqlite",
                                          **uplink_kw),
                             site_id=SITE, device_id=device_id, vault_dir=self.vault.path)
        self.sealer = Sealer(self.vault, load_identity(keys), device_id=device_id, site_id=SITE,
                             listeners=[self.uplink.on_sealed])
        self.uplink.start()
        self.sealer.start(moment())

    def still(self, size: int) -> SealedItem:
        data = os.urandom(size)
        return self.sealer.seal("still", moment(), media=data, media_type="image/jpeg", ext="jpg")

    def close(self) -> None:
        self.uplink.close()
        self.vault.close()


class TestIngest:
    """Ingest running in this process with a persistent session (the broker queues while it is away)."""

    __test__ = False

    def __init__(self, out: Path, mqtt: MqttConfig, share: str | None = "workers") -> None:
        self.ingest = Ingest(out)
        self.link = MqttLink(mqtt, name="ingest")
        subscribe_ingest(self.link, self.ingest, share)
        self.link.start()
        if not self.link.wait_connected(10):
            raise RuntimeError(f"ingest could not connect: {self.link.last_error}")

    def wait_records(self, device: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rep = self.ingest.report().get(device)
            if rep is not None and rep.records >= count and not rep.incomplete:
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self.link.close(offline=False)
        self.ingest.close()


def _child(argv: list[str]) -> int:
    """Seal N stills (or none) then keep uploading until drained or killed."""
    p = argparse.ArgumentParser()
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--mqtt", required=True, help="MqttConfig as JSON")
    p.add_argument("--stills", type=int, default=0)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--drain", type=float, default=0.0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    dev = TestDevice(a.root, a.device, MqttConfig.model_validate_json(a.mqtt), chunk_bytes=16 * 1024,
                     window_bytes=64 * 1024)
    for _ in range(a.stills):
        dev.still(a.size)
    print(json.dumps({"sealed": dev.sealer.next_seq}), flush=True)
    if a.drain:
        ok = dev.uplink.drain(a.drain)
        dev.close()
        return 0 if ok else 1
    time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))

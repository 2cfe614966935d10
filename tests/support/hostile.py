"""A compromised device: a genuine identity and sealer, plus the means to sign whatever it likes.

Used by the ingest unit tests and the tests/security attacks (through the real broker and CLI).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agent.core.clock import SystemClock
from agent.core.model import NO_GPS, Moment, SealedItem, TimeQuality
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity, init_identity, load_identity
from agent.signing.records import sign_record
from agent.wire.chunks import MediaRef, chunk_props
from agent.wire.mqtt import Inbound

SITE = "site-1"
ORG = "Test Customs"


def now_moment() -> Moment:
    clock = SystemClock()
    return Moment(wall_ns=clock.wall_ns(), mono_ns=clock.mono_ns(), gps=NO_GPS,
                  time=TimeQuality(source="ntp", synced=True))


class Device:
    """A device with its own vault; ``sidecar``/``chunks`` give the exact bytes it would publish."""

    def __init__(self, root: Path, device_id: str, *, keys: Path | None = None) -> None:
        self.device_id = device_id
        keys = keys or root / "keys"
        if not (keys / "device.key").exists():
            init_identity(keys, device_id, ORG)
        self.keys = keys
        self.identity: DeviceIdentity = load_identity(keys)
        self.vault = Vault(root / "vault")
        self.sealer = Sealer(self.vault, self.identity, device_id=device_id, site_id=SITE)
        self.sealer.start(now_moment())

    def still(self, data: bytes) -> SealedItem:
        return self.sealer.seal("still", now_moment(), media=data, media_type="image/jpeg", ext="jpg")

    def event(self) -> SealedItem:
        return self.sealer.seal("event", now_moment(), extra={"type": "test"})

    def forge(self, template: SealedItem, **changes: Any) -> bytes:
        """A record signed with this device's genuine key, with any fields changed (a compromised device)."""
        record = json.loads(json.dumps(template.record))
        record.update(changes)
        return sign_record(record, self.identity).to_sidecar()

    def close(self) -> None:
        self.vault.close()

    @property
    def topic(self) -> str:
        return f"evidence/{SITE}/{self.device_id}"


def sidecar(item: SealedItem) -> bytes:
    return Path(item.record_path).read_bytes()


def record_msg(dev: Device, payload: bytes) -> Inbound:
    return Inbound(f"{dev.topic}/record", payload, 1, False)


def chunk_msgs(dev: Device, item: SealedItem, data: bytes, chunk: int = 4096) -> list[Inbound]:
    media = item.record["media"]
    ref = MediaRef(item.record_hash, item.seq, item.kind, media["name"], media["sha256"], media["size"],
                   "image/jpeg")
    total = max(1, -(-len(data) // chunk))
    out = []
    for i in range(total):
        piece = data[i * chunk:(i + 1) * chunk]
        out.append(Inbound(f"{dev.topic}/media", piece, 1, False,
                           tuple(chunk_props(ref, i, total, i * chunk, piece))))
    return out


def raw_chunk(dev: Device, *, item: str = "a" * 64, seq: int | str = 1, kind: str = "still",
              name: str | None = None, size: int | str = 100, index: int | str = 0, total: int | str = 1,
              offset: int | str = 0, data: bytes = b"x" * 100, sha256: str = "b" * 64) -> Inbound:
    """A media chunk with every property chosen by the attacker (its own hash is right)."""
    props = [("item", item), ("seq", str(seq)), ("kind", kind), ("name", name or f"{int(seq):012d}.{kind}.jpg"),
             ("sha256", sha256), ("size", str(size)), ("index", str(index)), ("total", str(total)),
             ("offset", str(offset)), ("chunk", hashlib.sha256(data).hexdigest())]
    return Inbound(f"{dev.topic}/media", data, 1, False, tuple(props))

"""A simulated fleet for load tests and benchmarks: many device identities sealing genuine records fast.

Each device has its own P-256 key and a leaf certificate from one fleet CA (one CA keygen, then a
cheap leaf per device). Records are sealed by the real device ``Sealer`` into an in-memory vault,
so what goes on the wire is byte-for-byte what a device sends (sidecar + media chunks with the
uplink's user properties); nothing is written to disk, which keeps 100 000 records cheap to make.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes

from agent.core.clock import SystemClock
from agent.core.model import NO_GPS, Moment, SealedItem, TimeQuality
from agent.device.sealer import Sealer
from agent.signing.keys import DeviceIdentity, _name, issue_leaf, make_ca
from agent.signing.layout import bucket_of, item_stem
from agent.signing.records import SignedRecord
from agent.wire.chunks import MediaRef, chunk_count, chunk_props
from agent.wire.messages import make_properties
from agent.wire.topics import DeviceTopics

SITE = "site-1"
CHUNK = 48 * 1024


@dataclass(frozen=True)
class Message:
    """One MQTT message as a device's uplink would publish it."""

    topic: str
    payload: bytes
    props: tuple[tuple[str, str], ...]
    item: str  # record hash
    is_record: bool


class MemoryVault:
    """Just enough of ``Vault`` for the Sealer: keeps nothing but the chain head."""

    def __init__(self) -> None:
        self.path = Path("/nonexistent-memory-vault")
        self._last: tuple[int, str] | None = None
        self.sidecars: dict[int, bytes] = {}

    def install_certificates(self, cert_pem: bytes, chain_pem: bytes) -> None:
        pass

    def last(self) -> tuple[int, str] | None:
        return self._last

    def take_orphans(self) -> list[Path]:
        return []

    def check_room(self, nbytes: int) -> None:
        pass

    def store(self, rec: SignedRecord, media: Path | bytes | None, ext: str | None) -> tuple[Path, Path | None]:
        seq = int(rec.record["seq"])
        self._last = (seq, rec.hash)
        self.sidecars[seq] = rec.to_sidecar()
        stem = item_stem(seq, str(rec.record["kind"]))
        bucket = self.path / "items" / bucket_of(seq)
        return bucket / f"{stem}.rec", (None if media is None else bucket / f"{stem}.{ext}")


def _moment(clock: SystemClock) -> Moment:
    return Moment(wall_ns=clock.wall_ns(), mono_ns=clock.mono_ns(), gps=NO_GPS,
                  time=TimeQuality(source="ntp", synced=True))


class FleetDevice:
    """One simulated device: its identity, a sealer over a memory vault, and wire messages out."""

    def __init__(self, device_id: str, identity: DeviceIdentity, site: str = SITE) -> None:
        self.device_id = device_id
        self.topics = DeviceTopics(site, device_id)
        self.vault = MemoryVault()
        self.clock = SystemClock()
        self.sealer = Sealer(self.vault, identity, device_id=device_id, site_id=site,  # type: ignore[arg-type]
                             clock=self.clock)
        self.pending: list[Message] = []
        self.sealer.add_listener(self._on_sealed)
        self._media: bytes | None = None
        self.sealer.start(_moment(self.clock))

    def _on_sealed(self, item: SealedItem) -> None:
        sidecar = self.vault.sidecars.pop(item.seq)
        media = item.record.get("media") or {}
        props = (("item", item.record_hash), ("seq", str(item.seq)), ("kind", item.kind),
                 ("media", str(media.get("name", ""))), ("size", str(media.get("size", 0))))
        self.pending.append(Message(self.topics.record, sidecar, props, item.record_hash, True))
        if media and self._media is not None:
            ref = MediaRef(item=item.record_hash, seq=item.seq, kind=item.kind, name=str(media["name"]),
                           sha256=str(media["sha256"]), size=int(media["size"]), content_type=str(media["type"]))
            total = chunk_count(ref.size, CHUNK)
            for i in range(total):
                data = self._media[i * CHUNK:(i + 1) * CHUNK]
                self.pending.append(Message(self.topics.media, data,
                                            tuple(chunk_props(ref, i, total, i * CHUNK, data)),
                                            item.record_hash, False))

    def seal(self, kind: str = "event", media: bytes | None = None) -> list[Message]:
        """Seal one item; returns its messages (record first, then media chunks)."""
        self.pending = []
        self._media = media
        if media is None:
            self.sealer.seal(kind, _moment(self.clock), extra={"type": "load_test"})
        else:
            self.sealer.seal(kind, _moment(self.clock), media=media, media_type="image/jpeg", ext="jpg")
        out = [m for m in self.pending if m.is_record] + [m for m in self.pending if not m.is_record]
        self.pending = []
        return out


class Fleet:
    """``count`` devices with their own keys, certified by one fleet CA (written to ``ca_file``)."""

    def __init__(self, count: int, ca_file: Path, prefix: str = "dev") -> None:
        ca_key, ca_cert = make_ca("Fleet Test CA", "Test Customs")
        ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self.ca_file = ca_file
        self.devices: list[FleetDevice] = []
        for i in range(count):
            device_id = f"{prefix}-{i:05d}"
            key = ec.generate_private_key(ec.SECP256R1())
            leaf = issue_leaf(ca_key, ca_cert, _name(device_id, "Test Customs", "evidence-camera"), key.public_key())
            self.devices.append(FleetDevice(device_id, DeviceIdentity(key, leaf, (leaf, ca_cert))))

    def restart_messages(self) -> list[Message]:
        """The restart record each device sealed on start (seq 0), as messages."""
        out: list[Message] = []
        for d in self.devices:
            out += d.pending
            d.pending = []
        return out

    def burst(self, records: int, media_every: int = 3, media_size: int = 2048,
              shuffle: random.Random | None = None) -> Iterator[Message]:
        """``records`` sealed items round-robin over the fleet; every ``media_every``-th carries media.

        With ``shuffle`` each item comes from a device drawn at random (each device's own order kept), as a
        real fleet's traffic mixes: strict round robin over an even number of devices makes a broker's
        round-robin shared subscription hand each worker a fixed half of the devices.
        """
        for n in range(records):
            dev = self.devices[shuffle.randrange(len(self.devices)) if shuffle else n % len(self.devices)]
            media = os.urandom(media_size) if media_every and n % media_every == 0 else None
            yield from dev.seal("still" if media is not None else "event", media)


class Publisher:
    """A plain paho publisher (QoS 1, many in flight) standing in for the fleet's uplinks.

    paho numbers every QoS 1 message with a 16-bit packet id *when publish() is called* and keys its
    unsent queue by it: with more than 65 535 messages waiting, a new message silently replaces the
    queued one with the same id (a 100 000-record burst lost ~40 % before reaching the broker). So
    ``send`` keeps at most ``outstanding`` messages unacknowledged by the broker and waits for PUBACKs.
    """

    def __init__(self, host: str, port: int, client_id: str, inflight: int = 200,
                 outstanding: int = 20_000) -> None:
        if not 0 < outstanding < 65_535:
            raise ValueError("outstanding must stay below paho's 65 535 packet ids")
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.outstanding = outstanding
        self._acked = 0
        self._cond = threading.Condition()
        self.sent = 0  # messages handed to paho
        self.failed = 0  # PUBACKs with a failure reason code
        self.sent_at: dict[str, int] = {}  # record hash -> wall-clock publish time (ns; compared across processes)
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_publish(self, _c: object, _u: object, _mid: int, rc: object, _p: object) -> None:
        with self._cond:
            self._acked += 1
            if getattr(rc, "is_failure", False):
                self.failed += 1
            self._cond.notify_all()

    @property
    def acked(self) -> int:
        with self._cond:
            return self._acked

    def send(self, messages: list[Message] | Iterator[Message], rate: float | None = None) -> int:
        """Publish everything (QoS 1); with ``rate``, at most that many records per second."""
        n = records = 0
        started = time.monotonic()
        for m in messages:
            props = make_properties(PacketTypes.PUBLISH, user_props=m.props)
            if m.is_record:
                records += 1
                if rate:
                    ahead = started + records / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
            with self._cond:  # never more than `outstanding` packet ids in use (see the class docstring)
                while self.sent - self._acked >= self.outstanding:
                    self._cond.wait(1.0)
            if m.is_record:
                self.sent_at.setdefault(m.item, time.time_ns())
            info = self.client.publish(m.topic, m.payload, qos=1, properties=props)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"publish to {m.topic} failed: {paho.error_string(info.rc)}")
            with self._cond:
                self.sent += 1
            n += 1
        return n

    def wait_acked(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.acked >= n:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""The sealer: the only part that reaches the signing key.

Every piece of evidence becomes a signed record that names its media by SHA-256, links to the
previous record's hash and carries a gap-free sequence number; the chain continues across restarts
and every start writes a ``restart`` record so a gap in time is explicit, never silent.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

import agent
from agent.core.clock import Clock, SystemClock, boot_id, iso_utc
from agent.core.errors import VerificationError
from agent.core.model import Moment, SealedItem
from agent.core.vocab import RECORD_KINDS
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity
from agent.signing.layout import bucket_of
from agent.signing.records import GENESIS_PREV, RECORD_VERSION, parse_sidecar, sign_record

log = logging.getLogger(__name__)

Listener = Callable[[SealedItem], None]
KINDS = frozenset(RECORD_KINDS)


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file; mmap lets hashlib read the page cache without copies."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return hashlib.sha256(b"").hexdigest(), 0
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hashlib.sha256(mapped).hexdigest(), size


def open_inspection(vault: Vault, last: tuple[int, str] | None) -> dict[str, Any] | None:
    """The inspection open at the newest record, read from the chain itself (so it survives a restart).

    Every record sealed while an inspection is open carries ``extra.inspection``; ``inspection_end``
    closes it. So the newest record alone says whether one is open: no second state file to disagree.
    """
    if last is None:
        return None
    seq = last[0]
    for path in (vault.path / "items" / bucket_of(seq)).glob(f"{seq:012d}.*.rec"):
        try:
            rec = parse_sidecar(path.read_bytes(), str(path)).record
        except (OSError, VerificationError):
            return None
        extra = rec.get("extra") or {}
        if rec.get("kind") == "inspection_start":
            return {"case": extra.get("case"), "start_seq": rec.get("seq")}
        if rec.get("kind") == "inspection_end":
            return None
        stamp = extra.get("inspection")
        return dict(stamp) if isinstance(stamp, dict) and isinstance(stamp.get("case"), str) else None
    return None


def moment_record(m: Moment) -> dict[str, Any]:
    return {"wall": iso_utc(m.wall_ns), "wall_us": m.wall_ns // 1000, "mono_us": m.mono_ns // 1000}


class Sealer:
    """Signs and stores evidence; thread-safe, one chain per device."""

    def __init__(self, vault: Vault, identity: DeviceIdentity, *, device_id: str, site_id: str,
                 listeners: Iterable[Listener] = (), clock: Clock | None = None) -> None:
        self.vault = vault
        self.clock = clock or SystemClock()
        self.identity = identity
        self.device_id = device_id
        self.site_id = site_id
        self._listeners = list(listeners)
        self._lock = threading.RLock()  # start() holds it around its seal: nothing slips in between
        self._boot = boot_id()
        cert_pem = identity.cert.public_bytes(serialization.Encoding.PEM)
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in identity.chain[1:])
        vault.install_certificates(cert_pem, chain_pem)
        self._cert_sha256 = hashlib.sha256(identity.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        last = vault.last()
        self._next_seq, self._prev = (0, GENESIS_PREV) if last is None else (last[0] + 1, last[1])
        self._inspection = open_inspection(vault, last)
        self._started = False

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def inspection(self) -> dict[str, Any] | None:
        """``{"case", "start_seq"}`` of the open inspection, or None."""
        with self._lock:
            return None if self._inspection is None else dict(self._inspection)

    def start(self, moment: Moment, reason: str = "start") -> SealedItem:
        """Write the restart record that opens this run (and lists any crash leftovers)."""
        orphans = []
        for p in self.vault.take_orphans():
            digest, size = hash_file(p)
            orphans.append({"name": p.name, "sha256": digest, "size": size})
        with self._lock:  # the item it names must be the one just before it, whatever other threads seal
            previous = None if self._next_seq == 0 else {"seq": self._next_seq - 1, "hash": self._prev}
            item = self.seal("restart", moment, extra={
                "reason": reason, "previous": previous, "boot_id": self._boot,
                "agent_version": agent.__version__, "cert_sha256": self._cert_sha256,
                "orphans": orphans,
            })
        self._started = True
        return item

    def seal(self, kind: str, moment: Moment, *, media: Path | bytes | None = None,
             media_type: str | None = None, ext: str | None = None, end: Moment | None = None,
             extra: Mapping[str, Any] | None = None) -> SealedItem:
        """Hash, sign and durably store one item; listeners hear of it (in order) once it is on disk."""
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        if media is not None and (media_type is None or ext is None):
            raise ValueError("media needs media_type and ext")
        media_info: dict[str, Any] | None = None
        if media is not None:
            if isinstance(media, bytes):
                digest, size = hashlib.sha256(media).hexdigest(), len(media)
            else:
                digest, size = hash_file(media)
            self.vault.check_room(size)
            media_info = {"sha256": digest, "size": size, "type": media_type}
        with self._lock:
            sealed_wall = self.clock.wall_ns()
            seq = self._next_seq
            if media_info is not None:
                media_info["name"] = f"{seq:012d}.{kind}.{ext}"
            record: dict[str, Any] = {
                "v": RECORD_VERSION,
                "device_id": self.device_id,
                "site_id": self.site_id,
                "seq": seq,
                "kind": kind,
                "captured": {**moment_record(moment), "boot_id": self._boot},
                # Sealing order is the chain's order; capture times of concurrent sources may interleave.
                "sealed": {"wall": iso_utc(sealed_wall), "wall_us": sealed_wall // 1000,
                           "mono_us": self.clock.mono_ns() // 1000},
                "time": moment.time.as_record(),
                "gps": moment.gps.as_record(),
                "media": media_info,
                "prev": self._prev,
                "key_id": self.identity.key_id,
                "extra": dict(extra or {}),
            }
            if end is not None:
                record["end"] = moment_record(end)
            inspection = self._inspection
            if kind == "inspection_start":
                if inspection is not None:
                    raise ValueError(f"inspection {inspection['case']} is still open")
                inspection = {"case": str(record["extra"]["case"]), "start_seq": seq}
            elif inspection is not None:
                # Every item sealed while an inspection is open names its case (and where it began).
                record["extra"]["inspection"] = dict(inspection)
            signed = sign_record(record, self.identity)
            record_path, media_path = self.vault.store(signed, media, ext)
            self._next_seq = seq + 1
            self._prev = signed.hash
            self._inspection = None if kind == "inspection_end" else inspection
            item = SealedItem(seq=seq, kind=kind, record_hash=signed.hash, record=record,
                              record_path=str(record_path),
                              media_path=None if media_path is None else str(media_path))
            # Inside the lock so listeners (Merkle log, outbox) see items in sequence order.
            for listener in list(self._listeners):
                try:
                    listener(item)
                except Exception:  # a listener must never undo or block sealing
                    log.exception("sealed-item listener %r failed for seq %d", listener, seq)
        return item

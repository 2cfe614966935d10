"""Customs-side ingest: receive a fleet's evidence, check every piece, keep it as verifiable vaults.

Output: ``OUT/<device>/`` is laid out like the device vault (``items/<bucket>/<seq>.<kind>.<ext>``
+ ``.rec``, ``device/cert.pem`` + ``chain.pem``) so ``evidence-agent verify OUT/<device>`` works.
``OUT/.ingest/`` holds the state database, partial media and a quarantine of refused messages.

Delivery is at-least-once: duplicates are recognised by record hash. A message is acknowledged
to the broker only after it is stored (the handler returns first), so a crash means redelivery.
Workers of one ``--share`` group must share OUT (same filesystem): chunks of one file may reach
different workers, and SQLite serialises them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.core.errors import VerificationError
from agent.core.fsutil import atomic_write
from agent.customs.store.chain import Link, SqliteLinks
from agent.customs.store.durable import SyncBatch
from agent.signing.keys import key_id_of
from agent.signing.layout import bucket_of, item_stem
from agent.signing.records import SignedRecord, parse_sidecar
from agent.signing.trust import verify_chain, verify_signature
from agent.wire.chunks import Chunk, parse_chunk, props_dict
from agent.wire.mqtt import Inbound
from agent.wire.topics import check_segment, parse_device_topic

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (item TEXT PRIMARY KEY, site TEXT NOT NULL, device TEXT NOT NULL,
  seq INTEGER NOT NULL, kind TEXT NOT NULL, media_name TEXT, media_sha256 TEXT, media_done INTEGER NOT NULL,
  at_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS records_dev ON records(device, seq);
CREATE TABLE IF NOT EXISTS chunks (item TEXT NOT NULL, total INTEGER NOT NULL, idx INTEGER NOT NULL,
  PRIMARY KEY (item, total, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS media (item TEXT PRIMARY KEY, device TEXT NOT NULL, sha256 TEXT NOT NULL,
  path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (device TEXT NOT NULL, name TEXT NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (device, name)) WITHOUT ROWID;
"""


class Refused(Exception):
    """A message that cannot be accepted; ``code`` is the MQTT v5 reason it maps to."""

    def __init__(self, message: str, code: int = 0x99) -> None:
        super().__init__(message)
        self.code = code


REASONS = {0x99: "Payload format invalid", 0x83: "Implementation specific error", 0x87: "Not authorized",
           0x90: "Topic Name invalid"}


@dataclass
class DeviceReport:
    site: str
    records: int = 0
    max_seq: int = -1
    missing: list[int] = field(default_factory=list)
    incomplete: list[int] = field(default_factory=list)  # record stored, media not (yet) complete
    duplicates: int = 0
    refused: int = 0
    status: dict[str, Any] | None = None
    availability: str | None = None


def _load_cas(paths: Sequence[Path]) -> list[x509.Certificate]:
    cas: list[x509.Certificate] = []
    for p in paths:
        cas += x509.load_pem_x509_certificates(Path(p).read_bytes())
    return cas


class Ingest:
    """Handlers for record/media/alert/receipt/status/availability messages; thread-safe."""

    def __init__(self, out: Path, *, trusted_ca: Sequence[Path] = (), verify_items: bool = True) -> None:
        self.out = Path(out)
        self.state = self.out / ".ingest"
        for sub in ("partial", "quarantine", "receipts"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        self.cas = _load_cas(trusted_ca)
        self.verify_items = verify_items
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.state / "state.sqlite", check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._links = SqliteLinks(self._db)
        self._sync = SyncBatch()  # files of the current transaction, fsynced once before it commits
        self._trusted: set[tuple[str, tuple[bytes, ...]]] = set()  # (device, x5c) chains already verified
        self._pinned: dict[str, bytes] = {}
        self._live: dict[str, dict[str, Any]] = {}
        self.messages = 0

    # -- entry point ----------------------------------------------------------------------------
    def handle(self, msg: Inbound) -> None:
        """One message; refusals are quarantined and counted, never dropped silently."""
        with self._lock:
            self.messages += 1
            self._db.execute("BEGIN IMMEDIATE")  # other workers of a --share group use the same OUT
            try:
                self._dispatch(msg)
                self._sync.flush()
                self._db.execute("COMMIT")
            except BaseException:
                self._sync.discard()
                self._db.execute("ROLLBACK")
                raise

    def handle_batch(self, msgs: Sequence[Inbound]) -> list[bool]:
        """Many messages in one transaction (one commit); per message: stored or refused (True) or not.

        A message whose handling raises (not a refusal: a full disk, an I/O error) is rolled back to
        its savepoint and answered False, so flow control keeps it unacknowledged and retries it.
        """
        done: list[bool] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for msg in msgs:
                    self.messages += 1
                    self._db.execute("SAVEPOINT msg")
                    try:
                        self._dispatch(msg)
                    except Exception:
                        log.exception("storing the message on %s failed; it stays unacknowledged", msg.topic)
                        self._db.execute("ROLLBACK TO msg")
                        done.append(False)
                    else:
                        done.append(True)
                    self._db.execute("RELEASE msg")
                self._sync.flush()  # one round of fsyncs for the batch, before the commit and any ack
                self._db.execute("COMMIT")
            except BaseException:
                self._sync.discard()
                self._db.execute("ROLLBACK")
                raise
        return done

    def _dispatch(self, msg: Inbound) -> None:
        try:
            site, device, channel = parse_device_topic(msg.topic)
        except ValueError as exc:
            self._quarantine(msg, "?", Refused(str(exc), 0x90))
            return
        try:
            if channel in ("record", "alert") and msg.prop("index") is not None:
                whole = self._chunked_record(msg)
                if whole is None:
                    return
                msg = whole
            if channel == "record":
                self._record(site, device, msg)
            elif channel == "media":
                self._media(site, device, msg)
            elif channel == "alert":
                log.warning("ALERT from %s/%s: seq %s %s", site, device, msg.prop("seq"), msg.prop("kind"))
            elif channel == "receipt":
                name = hashlib.sha256(msg.payload).hexdigest()
                atomic_write(self.out / device / "receipts" / f"{name}.json", msg.payload)
            elif channel == "status":
                self._live.setdefault(device, {})["status"] = json.loads(msg.payload or b"null")
            elif channel == "availability":
                self._live.setdefault(device, {})["availability"] = msg.payload.decode(errors="replace")
        except Refused as exc:
            self._quarantine(msg, device, exc)
        except (ValueError, KeyError, TypeError) as exc:
            self._quarantine(msg, device, Refused(f"{type(exc).__name__}: {exc}", 0x99))

    # -- records --------------------------------------------------------------------------------
    def _check_signed(self, site: str, device: str, signed: SignedRecord, msg: Inbound) -> dict[str, Any]:
        record = signed.record
        if record.get("device_id") != device or record.get("site_id") != site:
            raise Refused(f"record says device {record.get('device_id')!r} at site {record.get('site_id')!r} "
                          f"but came on the topic of {device} at {site}", 0x87)
        if msg.prop("item") not in (None, signed.hash):
            raise Refused("record hash does not match the message's item property")
        certs = signed.certificates()
        if not certs:
            raise Refused("record envelope carries no certificate", 0x83)
        try:
            verify_signature(certs[0], signed.sig, signed.body)
            if key_id_of(certs[0].public_key()) != signed.key_id:  # type: ignore[arg-type]
                raise VerificationError("record key_id is not the certificate's key")
            chain_key = (device, signed.x5c)
            if chain_key not in self._trusted:  # a device sends the same chain every time: check it once
                verify_chain(certs, self.cas, device=device)
                self._trusted.add(chain_key)
        except VerificationError as exc:
            raise Refused(f"record of {device}: {exc}", 0x87) from exc
        self._pin(device, certs)
        int(record["seq"])
        check_segment(str(record["kind"]), "record kind")
        return record

    def _pin(self, device: str, certs: list[x509.Certificate]) -> None:
        vault = self.out / device / "device"
        leaf_pem = certs[0].public_bytes(serialization.Encoding.PEM)
        pinned = vault / "cert.pem"
        if self._pinned.get(device) == leaf_pem:
            return
        if pinned.exists():
            self._pinned[device] = pinned.read_bytes()
            if self._pinned[device] != leaf_pem:
                raise Refused(f"record of {device} is signed with another certificate than the one on file "
                              f"({pinned}); a re-keyed device needs a new vault", 0x87)
            return
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[1:])
        atomic_write(vault / "chain.pem", chain_pem)
        atomic_write(pinned, leaf_pem)
        if not self.cas:
            log.warning("%s: certificate pinned on first use (no --trust-ca given)", device)

    def _record(self, site: str, device: str, msg: Inbound) -> None:
        try:
            signed = parse_sidecar(msg.payload, msg.topic)
        except VerificationError as exc:
            raise Refused(str(exc)) from exc
        if self._known(signed.hash):
            self._count(device, "duplicates")
            return
        record = self._check_signed(site, device, signed, msg)
        seq, kind = int(record["seq"]), str(record["kind"])
        bucket = self.out / device / "items" / bucket_of(seq)
        self._sync.write(bucket / f"{item_stem(seq, kind)}.rec", msg.payload)
        media = record.get("media") or None
        self._db.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?)",
                         (signed.hash, site, device, seq, kind, media and media["name"],
                          media and media["sha256"], 0 if media else 1, time.time_ns()))
        if self.verify_items:
            self._check_chain(device, Link.of(signed.hash, record))
        if media:
            self._place_media(signed.hash)

    def _known(self, item: str) -> bool:
        return self._db.execute("SELECT 1 FROM records WHERE item=?", (item,)).fetchone() is not None

    # -- media ----------------------------------------------------------------------------------
    def _media(self, site: str, device: str, msg: Inbound) -> None:
        try:
            chunk = parse_chunk(props_dict(msg.user_props), msg.payload)
        except ValueError as exc:
            raise Refused(str(exc)) from exc
        done = self._db.execute("SELECT 1 FROM media WHERE item=?", (chunk.item,)).fetchone()
        if done is not None:
            self._count(device, "duplicates")
            return
        final = self._reassemble(chunk)
        if final is None:
            return
        self._db.execute("INSERT INTO media VALUES (?,?,?,?)", (chunk.item, device, chunk.sha256, str(final)))
        self._db.execute("DELETE FROM chunks WHERE item=?", (chunk.item,))
        self._place_media(chunk.item)

    def _chunked_record(self, msg: Inbound) -> Inbound | None:
        """A record larger than the broker's packet limit arrives in chunks: the whole sidecar, once complete."""
        try:
            chunk = parse_chunk(props_dict(msg.user_props), msg.payload)
        except ValueError as exc:
            raise Refused(str(exc)) from exc
        final = self._reassemble(chunk)
        if final is None:
            return None
        self._db.execute("DELETE FROM chunks WHERE item=?", (chunk.item,))
        payload = final.read_bytes()
        final.unlink()
        try:
            record_hash = parse_sidecar(payload, msg.topic).hash
        except VerificationError as exc:
            raise Refused(str(exc)) from exc
        props = (("item", record_hash), ("seq", str(chunk.seq)), ("kind", chunk.kind))
        return dataclasses.replace(msg, payload=payload, user_props=props)

    def _reassemble(self, chunk: Chunk) -> Path | None:
        """Store one chunk durably; the whole file (checked against its SHA-256) once every chunk is here."""
        check_segment(chunk.name, "media name")
        partial = self.state / "partial" / f"{chunk.item}.{chunk.total}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, chunk.data, chunk.offset)
        finally:
            os.close(fd)
        self._sync.written(partial)
        self._db.execute("INSERT OR IGNORE INTO chunks VALUES (?,?,?)", (chunk.item, chunk.total, chunk.index))
        have = self._db.execute("SELECT COUNT(*) FROM chunks WHERE item=? AND total=?",
                                (chunk.item, chunk.total)).fetchone()[0]
        if have < chunk.total:
            return None
        digest = hashlib.sha256()
        with open(partial, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        if os.path.getsize(partial) != chunk.size or digest.hexdigest() != chunk.sha256:
            self._db.execute("DELETE FROM chunks WHERE item=? AND total=?", (chunk.item, chunk.total))
            partial.unlink()
            raise Refused(f"reassembled media of item {chunk.item[:12]} does not match its SHA-256", 0x83)
        final = self.state / "partial" / f"{chunk.item}.done"
        os.replace(partial, final)
        self._sync.moved(final)
        return final

    def _place_media(self, item: str) -> None:
        """Move complete media next to its record once both are here (either may come first)."""
        rec = self._db.execute("SELECT device, seq, kind, media_name, media_sha256, media_done FROM records "
                               "WHERE item=?", (item,)).fetchone()
        med = self._db.execute("SELECT sha256, path FROM media WHERE item=?", (item,)).fetchone()
        if rec is None or med is None or rec[5]:
            return
        device, seq, name, sha = rec[0], rec[1], rec[3], rec[4]
        if med[0] != sha:
            raise Refused(f"media of seq {seq} has SHA-256 {med[0][:12]}, its record says {sha[:12]}", 0x83)
        bucket = self.out / device / "items" / bucket_of(seq)
        os.replace(med[1], bucket / name)
        self._sync.moved(bucket / name)
        self._db.execute("UPDATE records SET media_done=1 WHERE item=?", (item,))
        self._db.execute("UPDATE media SET path=? WHERE item=?", (str(bucket / name), item))

    def _check_chain(self, device: str, link: Link) -> None:
        """Incremental verification: this record against its stored neighbours, once (store/chain.py)."""
        found = self._links.add(device, link)
        if found:
            self._count(device, "refused")
            log.error("%s seq %d: %s", device, link.seq, "; ".join(found))

    # -- bookkeeping ----------------------------------------------------------------------------
    def _count(self, device: str, name: str) -> None:
        self._db.execute("INSERT INTO counters VALUES (?,?,1) ON CONFLICT(device, name) DO UPDATE SET n=n+1",
                         (device, name))

    def _quarantine(self, msg: Inbound, device: str, exc: Refused) -> None:
        reason = REASONS.get(exc.code, "Unspecified error")
        log.error("refused message on %s: %s (%s, 0x%02x)", msg.topic, exc, reason, exc.code)
        name = f"{time.time_ns()}-{hashlib.sha256(msg.payload).hexdigest()[:16]}"
        q = self.state / "quarantine"
        atomic_write(q / f"{name}.bin", msg.payload, sync_dir=False)
        atomic_write(q / f"{name}.json", json.dumps({
            "topic": msg.topic, "user_properties": msg.user_props, "problem": str(exc),
            "reason_code": exc.code, "reason": reason}, indent=1).encode())
        self._count(device, "refused")

    def report(self) -> dict[str, DeviceReport]:
        """Per device: records stored, missing sequence numbers, incomplete media, duplicates."""
        with self._lock:
            out: dict[str, DeviceReport] = {}
            for device, site in self._db.execute("SELECT DISTINCT device, site FROM records"):
                seqs = [r[0] for r in self._db.execute("SELECT seq FROM records WHERE device=? ORDER BY seq",
                                                       (device,))]
                have = set(seqs)
                rep = DeviceReport(site=site, records=len(seqs), max_seq=seqs[-1] if seqs else -1)
                rep.missing = [s for s in range(0, rep.max_seq + 1) if s not in have]
                rep.incomplete = [r[0] for r in self._db.execute(
                    "SELECT seq FROM records WHERE device=? AND media_done=0 ORDER BY seq", (device,))]
                out[device] = rep
            for device, name, n in self._db.execute("SELECT device, name, n FROM counters"):
                rep = out.setdefault(device, DeviceReport(site="?"))
                setattr(rep, name, n)
            for device, live in self._live.items():
                rep = out.setdefault(device, DeviceReport(site="?"))
                rep.status = live.get("status")
                rep.availability = live.get("availability")
            return out

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""Customs-side ingest: receive a fleet's evidence, check every piece, keep it as verifiable vaults.

Output: ``OUT/<device>/`` is laid out like the device vault (``items/<bucket>/<seq>.<kind>.<ext>``
+ ``.rec``, ``device/cert.pem`` + ``chain.pem``) so ``evidence-agent verify OUT/<device>`` works.
``OUT/<device>/forks/`` keeps (bounded) second records claimed for an already stored seq, so that
verify of the received vault shows the fork. ``OUT/.ingest/`` holds the state database, partial
media per device and a bounded quarantine of refused messages per device.

The customs side trusts nothing a device sends (see agent.customs.guard and docs/security.md):
paths come from validated values only, every table is keyed by device, evidence is write-once, and
every message is stored, refused with a counted reason, or quarantined; ``handle_batch`` (the one path:
``handle`` is its one-message case) never raises for what a message holds, so no message is left
unacknowledged to stall the fleet.
Workers of one ``--share`` group share OUT and the group's bookkeeping (agent.customs.state): with a
SQLite state on one machine they take turns per batch on a lock; with ``--index postgresql://…`` the
state is in the index and each batch holds only its own devices, so workers on several machines store
in parallel. A record's CPU work is done before any lock (record_check.py).

Per record the cost is flat (see docs/deploy-customs.md): ``handle_batch`` stores many messages in one
transaction with one round of fsyncs (store/durable.py), each record's chain is checked once against
its stored neighbours (store/chain.py) instead of re-verifying the item from disk, and a device's
certificate chain is verified once per worker, not per record (its signature always is). Chunked media
are reassembled by reassembly.py; complete media also go to the blob store (``--blobs``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from agent.core.fsutil import atomic_write
from agent.customs.broker.registry import Registry
from agent.customs.guard import (
    Limits,
    Refused,
    alert_summary,
    canonical_media_name,
    check_json_size,
)
from agent.customs.ingest_state import (
    DeviceReport,
    Quarantine,
    build_report,
    count,
    delivered_upto,
    keep_receipt,
    lost_after_delivery,
)
from agent.customs.pinning import Pins
from agent.customs.reassembly import Reassembly
from agent.customs.record_check import CheckedRecord, RecordChecker
from agent.customs.retained import RetainedJunk
from agent.customs.state.base import GroupState
from agent.customs.state.sqlite import SqliteState
from agent.customs.store.base import Index
from agent.customs.store.blobs import BlobStore
from agent.customs.store.chain import Link, StateLinks
from agent.customs.store.durable import SyncBatch
from agent.customs.store.model import Finding, ItemRow
from agent.signing.layout import BUCKET, bucket_of, item_stem
from agent.signing.records import SignedRecord
from agent.signing.revocation import CrlFile
from agent.signing.trust import load_anchors
from agent.wire.mqtt import Inbound
from agent.wire.topics import parse_device_topic

__all__ = ["DeviceReport", "Ingest", "Limits", "Refused"]

log = logging.getLogger(__name__)

class Ingest:
    """Handlers for record/media/alert/receipt/status/availability messages; thread-safe."""

    def __init__(self, out: Path, *, trusted_ca: Sequence[Path] = (), verify_items: bool = True,
                 limits: Limits | None = None, index: Index | None = None, blobs: BlobStore | None = None,
                 state: GroupState | None = None, revocations: CrlFile | None = None,
                 registry: Registry | None = None) -> None:
        self.out = Path(out)
        self.index = index  # the searchable customs index (SQLite or PostgreSQL), written in the same batch
        self.blobs = blobs  # content-addressed write-once copy of every media file (folder or S3), same batch
        self.state = self.out / ".ingest"
        for sub in ("partial", "quarantine"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        self.cas = load_anchors(trusted_ca)
        self.verify_items = verify_items
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._db = state if state is not None else SqliteState(self.state)  # the group's bookkeeping
        self._links = StateLinks(self._db)
        self._quarantine = Quarantine(self._db, self.state / "quarantine", self.limits)
        self._sync = SyncBatch()  # files of the current transaction, fsynced once before it commits
        self._parts = Reassembly(self._db, self.state / "partial", self.limits, self._sync)
        self._checked_before: dict[int, tuple[Inbound, CheckedRecord | Refused | None]] = {}  # handed back busy
        self._expired: set[str] = set()  # devices whose old chunk sets were dropped in this batch
        self._stale: dict[str, list[tuple[str, int]]] = {}  # the batch's expired chunk sets, by device
        self._moves: list[tuple[str, str]] = []  # media moved in this transaction, put back if it rolls back
        self._placed: list[Path] = []  # sidecars placed in this transaction, removed if it rolls back
        self._staged: dict[str, tuple[Path, Path]] = {}  # record hash -> (its staged sidecar, its place)
        self._buckets: dict[tuple[str, int], Path] = {}  # (device, bucket) -> its folder: joined once
        self._checker = RecordChecker(self.cas, self.limits)  # the lock-free part of a record's checks
        self._pins = Pins(self.out, self._sync, trust_on_first_use=not self.cas, revocations=revocations)
        self._live: dict[str, dict[str, Any]] = {}
        self.registry = registry  # device -> site; None: any site (the broker's ACL binds them)
        self._busy = threading.Event()  # never set: handle()'s bounded wait for a device another worker holds
        self.messages = 0
        self.slowest_ms = 0.0
        self.slowest_topic = ""

    # -- entry point ----------------------------------------------------------------------------
    def handle(self, msg: Inbound) -> bool:
        """One message: the one-message case of :meth:`handle_batch` (the path ``evidence-officer ingest``
        takes: precheck, staging, one transaction). True = stored or refused with a counted reason; False =
        not storable now (I/O, a locked database), nothing kept. Waits while another worker holds its device."""
        while True:
            try:
                done = self.handle_batch([msg])[0]
            except Exception:
                log.exception("could not store or refuse the message on %.200s", msg.topic)
                return False
            if done is not None:
                return done
            self._busy.wait(0.05)  # another worker of the group holds this device: its batch ends soon

    @contextmanager
    def _transaction(self, devices: Sequence[str]) -> Iterator[set[str]]:
        """The group state's batch (holding ``devices``, or some of them) with the index and the files in it."""
        self._expired.clear()
        self._moves.clear()
        self._placed.clear()
        try:
            with self._db.batch(devices) as held, self._index_transaction():
                try:
                    self._stale = self._parts.stale()
                    yield held
                    self._sync.flush()  # before the commits, and before flow control acknowledges
                except BaseException:
                    self._undo(0, 0)  # nothing is committed yet: the files follow the rows back
                    raise
            # (a separate index commits first: if the state commit fails, redelivery finds its rows; a failed
            # commit undoes no file: it may have reached the database before the connection broke)
        except BaseException:
            self._sync.discard()
            raise
        finally:
            self._moves.clear()
            self._placed.clear()

    def _undo(self, moves: int, placed: int) -> None:
        """Rolled back (from the ``moves``-th move and ``placed``-th sidecar on): complete media go back to
        where their rows say they are; sidecars of records no row names are removed (each was placed
        only because its seq was not stored)."""
        for src, dst in reversed(self._moves[moves:]):
            try:
                os.replace(dst, src)
            except OSError:
                log.exception("could not put %s back to %s after a rollback", dst, src)
        del self._moves[moves:]
        for path in self._placed[placed:]:
            path.unlink(missing_ok=True)
        del self._placed[placed:]

    def handle_batch(self, msgs: Sequence[Inbound]) -> list[bool | None]:
        """Many messages in one transaction and one round of fsyncs; per message True = stored or refused.

        False (kept unacknowledged, retried by flow control) only for what may pass: an I/O error or a
        busy/locked database. None: the message's device is held by another worker of the group right
        now; flow control offers it again with the next batch. Refusals are stored as such.

        A batch of one runs in a savepoint: any other failure is its refusal, as in ``handle``, and it
        never raises for what it contains. A larger batch has no savepoint per message (a round trip
        each on PostgreSQL): when a message fails in any way but a refusal, the whole batch rolls back
        (placed media move back) and the exception propagates; flow control then hands the messages in
        one at a time (flow.py), so the failure is that message's alone.
        """
        done: list[bool | None] = []
        with self._lock:
            # CPU-bound checks and sidecar writes first, outside any lock the group shares
            pre = [self._precheck(msg) for msg in msgs]
            for msg, checked in zip(msgs, pre, strict=True):
                if isinstance(checked, CheckedRecord):
                    self._stage(checked, msg.payload)
            devices = [self._device_of(msg) for msg in msgs]
            try:
                with self._transaction(devices) as held:
                    for msg, checked, device in zip(msgs, pre, devices, strict=True):
                        if device not in held:  # offered again with the next batch: keep its checks
                            done.append(None)
                            self._checked_before[id(msg)] = (msg, checked)
                            continue
                        self.messages += 1
                        done.append(self._one_of_batch(msg, checked, alone=len(msgs) == 1))
            finally:
                self._unstage()
        return done

    def _precheck(self, msg: Inbound) -> CheckedRecord | Refused | None:
        """The lock-free checks, done once per message even when a busy device sends it round again."""
        before = self._checked_before.pop(id(msg), None)
        if before is not None and before[0] is msg:
            return before[1]
        if len(self._checked_before) > 4 * 1024:  # only messages in flight belong here; never let it grow
            self._checked_before.clear()
        refusal = self._unregistered(msg.topic)
        if refusal is not None:  # refused in _dispatch; nothing is checked or staged for it
            return refusal
        return self._checker.precheck(msg)

    def _unregistered(self, topic: str) -> Refused | None:
        """A refusal when a registry is given and the topic's (device, site) is not in it."""
        try:
            problem = self.registry and self.registry.problem(*parse_device_topic(topic)[:2])
        except ValueError:
            return None  # refused as bad_topic in _dispatch
        return Refused(problem, 0x87, "unregistered_site") if problem else None

    def _stage(self, checked: CheckedRecord, payload: bytes) -> None:
        """Write the sidecar under a hidden name now; under the lock it is only renamed into place."""
        final = self._bucket(checked.device, checked.seq) / f"{item_stem(checked.seq, checked.kind)}.rec"
        try:  # named by the record hash: a fork of the same seq in this batch gets its own file
            self._staged[checked.signed.hash] = (SyncBatch.stage(final, payload, checked.signed.hash[:32]), final)
        except OSError:
            log.exception("could not stage %s; it is written under the lock instead", final)

    def _bucket(self, device: str, seq: int) -> Path:
        """``OUT/<device>/items/<bucket>`` (device: a validated topic segment), joined once per folder: path
        joins were a tenth of a record's CPU. Bounded: cleared when it holds 4 096 folders."""
        key = (device, seq // BUCKET)
        folder = self._buckets.get(key)
        if folder is None:
            if len(self._buckets) >= 4096:
                self._buckets.clear()
            folder = self._buckets[key] = self.out / device / "items" / bucket_of(seq)
        return folder

    def _unstage(self) -> None:
        """Staged sidecars not placed (duplicates, forks, refusals, a rolled-back batch) are removed."""
        for path, _final in self._staged.values():
            path.unlink(missing_ok=True)
        self._staged.clear()

    def _index_transaction(self) -> AbstractContextManager[None]:
        """The index's own transaction, unless the group state already writes it in the batch's."""
        if self.index is None or self._db.covers_index:
            return nullcontext()
        return self.index.transaction()

    def _one_of_batch(self, msg: Inbound, pre: CheckedRecord | Refused | None, *, alone: bool) -> bool:
        started = time.perf_counter()
        try:
            if not alone:
                self._dispatch(msg, pre)  # raises only for what is not a refusal: the batch rolls back
                return True
            return self._one_in_savepoint(msg, pre)
        finally:
            took = (time.perf_counter() - started) * 1000
            if took > self.slowest_ms:
                self.slowest_ms, self.slowest_topic = took, msg.topic[:200]

    def _one_in_savepoint(self, msg: Inbound, pre: CheckedRecord | Refused | None) -> bool:
        self._db.execute("SAVEPOINT msg")
        marks = len(self._moves), len(self._placed)
        try:
            self._dispatch(msg, pre)
            self._db.sync()  # a pipelining state: this message's statements ran, its errors surface here
        except self._db.retryable:
            log.exception("could not store the message on %.200s now; it stays unacknowledged", msg.topic)
            self._db.execute("ROLLBACK TO msg")
            self._undo(*marks)
            self._db.execute("RELEASE msg")
            return False
        except Exception as exc:  # as in handle(): a handler failure is a refusal
            log.exception("ingest failed on a message on %s; refusing it", msg.topic[:200])
            self._db.execute("ROLLBACK TO msg")
            self._undo(*marks)
            self._refuse(msg, self._device_of(msg),
                         Refused(f"internal error: {type(exc).__name__}: {exc}", 0x83, "internal_error"))
        self._db.execute("RELEASE msg")
        return True

    @staticmethod
    def _device_of(msg: Inbound) -> str:
        try:
            return parse_device_topic(msg.topic)[1]
        except ValueError:
            return "?"

    def _dispatch(self, msg: Inbound, pre: CheckedRecord | Refused | None = None) -> None:
        try:
            site, device, channel = parse_device_topic(msg.topic)
        except ValueError as exc:
            self._refuse(msg, "?", Refused(str(exc), 0x90, "bad_topic"))
            return
        try:
            refusal = self._unregistered(msg.topic)
            if refusal is not None:
                raise refusal
            if device not in self._expired:  # once per device and batch
                self._expired.add(device)
                self._parts.expire(device, self._stale)
            if channel in ("record", "alert") and msg.prop("index") is not None:
                whole = self._chunked_record(device, msg)
                if whole is None:
                    return
                msg = whole
            if channel == "record":
                self._record(site, device, msg, pre)
            elif channel == "media":
                self._media(device, msg)
            elif channel == "alert":
                check_json_size(msg.payload, self.limits.max_record_bytes, self.limits, "alert")
                log.warning("ALERT from %s/%s: seq %.20r %.40r %s", site, device, msg.prop("seq"), msg.prop("kind"),
                            alert_summary(msg.payload))
                count(self._db, device, "alerts")
            elif channel == "receipt":
                keep_receipt(self._db, self.out / device / "receipts", device, msg.payload, self.limits)
            elif channel == "status":
                check_json_size(msg.payload, self.limits.max_status_bytes, self.limits, "status")
                self._live.setdefault(device, {})["status"] = json.loads(msg.payload or b"null")
            elif channel == "availability":
                self._live.setdefault(device, {})["availability"] = msg.payload[:64].decode(errors="replace")
            else:
                raise Refused(f"unknown channel {channel[:40]!r}", 0x90, "bad_topic")
        except Refused as exc:
            self._refuse(msg, device, exc)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self._refuse(msg, device, Refused(f"{type(exc).__name__}: {exc}", 0x99))

    # -- records --------------------------------------------------------------------------------
    def _record(self, site: str, device: str, msg: Inbound, pre: CheckedRecord | Refused | None = None) -> None:
        if isinstance(pre, Refused):
            raise pre
        checked = pre if pre is not None else self._checker.check(site, device, msg)
        signed, seq, kind, media = checked.signed, checked.seq, checked.kind, checked.media
        record = signed.record
        self._pins.pin(device, list(checked.certs), signed.x5c[0])  # another certificate is refused first
        ins = self._db.execute("INSERT INTO records VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING 1",
                               (device, signed.hash, site, seq, kind, media and media["name"],
                                media and media["sha256"], 0 if media else 1, time.time_ns()))
        # asked in the same round trip (a pipelining state): has its media come first?
        med = self._db.execute("SELECT sha256, path FROM media WHERE device=? AND item=?",
                               (device, signed.hash)) if media else None
        new = bool(ins.fetchall())
        med_row = None if med is None else med.fetchone()
        if not new:  # the seq (or this very record) is stored: a redelivery, or a fork
            first = self._db.execute("SELECT item FROM records WHERE device=? AND seq=?", (device, seq)).fetchone()
            if first is None or first[0] == signed.hash:
                count(self._db, device, "duplicates")
            else:
                self._fork(device, seq, kind, signed, msg.payload)
            return
        staged = self._staged.pop(signed.hash, None)
        if staged is not None:
            placed = staged[1]
            self._sync.place(staged[0], placed)
        else:
            placed = self._bucket(device, seq) / f"{item_stem(seq, kind)}.rec"
            self._sync.write(placed, msg.payload)
        self._placed.append(placed)
        link = Link.of(signed.hash, record)
        found: list[str] = []
        if self.index is not None:  # the index checks the chain against its own stored neighbours
            found = self.index.put_item(ItemRow.of(signed.hash, signed.body, record), link)[1]
        elif self.verify_items:
            found = self._links.add(device, link)
        if found and self.verify_items:
            self._chain_broken(device, link.seq, found)
        if media and med_row is not None:
            rec_row = (seq, kind, media["name"], media["sha256"], 0)
            if self._place_media(device, signed.hash, rec_row, med_row):
                count(self._db, device, "orphan_media", -1)  # its media had come first

    def _fork(self, device: str, seq: int, kind: str, signed: SignedRecord, payload: bytes) -> None:
        """A second, validly signed record for a stored seq: the first stands; this one is kept as a finding."""
        count(self._db, device, "forks")
        log.error("ALERT %s forked its history: a different signed record for seq %d (item %s…); the first "
                  "record stands", device, seq, signed.hash[:16])
        if self._db.execute("SELECT 1 FROM forks WHERE device=? AND item=?", (device, signed.hash)).fetchone():
            return
        kept = self._db.execute("SELECT COUNT(*) FROM forks WHERE device=? AND path IS NOT NULL",
                                (device,)).fetchone()[0]
        path = None
        if kept < self.limits.max_forks:
            path = self.out / device / "forks" / signed.hash[:16] / f"{item_stem(seq, kind)}.rec"
            atomic_write(path, payload)
        self._db.execute("INSERT INTO forks VALUES (?,?,?,?,?)",
                         (device, seq, signed.hash, path and str(path), time.time_ns()))
        if self.index is not None and path is not None:  # as many as are kept: a forger cannot flood the index
            self.index.add_finding(Finding(device, seq, signed.hash, "fork",
                                           f"a second, different signed record for seq {seq} (item "
                                           f"{signed.hash[:16]}…); the first stands; kept in "
                                           f"{path.relative_to(self.out)}"))

    # -- media ----------------------------------------------------------------------------------
    def _media(self, device: str, msg: Inbound) -> None:
        chunk = self._parts.parse(msg, self.limits.max_item_bytes)
        canonical_media_name(chunk.seq, chunk.kind, chunk.name)
        # one round trip: is it stored, what its record says, how many orphans the device has
        row = self._db.execute(
            "SELECT (SELECT 1 FROM media WHERE device=? AND item=?), (SELECT n FROM counters WHERE device=? AND "
            "name='orphan_media'), r.seq, r.kind, r.media_name, r.media_sha256, r.media_done FROM (SELECT 1) AS one "
            "LEFT JOIN records r ON r.device=? AND r.item=?", (device, chunk.item, device, device, chunk.item)
        ).fetchone()
        if row[0]:
            count(self._db, device, "duplicates")
            return
        orphans = int(row[1] or 0)
        rec = None if row[2] is None else tuple(row[2:])
        if rec is not None and rec[3] != chunk.sha256:
            raise Refused(f"media chunk of item {chunk.item[:12]} names SHA-256 {chunk.sha256[:12]}, its record "
                          f"says {str(rec[3])[:12]}", 0x83, "media_mismatch")
        if rec is None and orphans >= self.limits.max_orphan_media:
            raise Refused(f"{device} already has {self.limits.max_orphan_media} complete media without a record "
                          "(max_orphan_media)", 0x97, "orphan_limit")
        final = self._parts.add(device, chunk)
        if final is None:
            return
        self._db.execute("INSERT INTO media VALUES (?,?,?,?)", (device, chunk.item, chunk.sha256, str(final)))
        if rec is None:
            count(self._db, device, "orphan_media")  # complete, its record not (yet) here
        else:
            self._place_media(device, chunk.item, tuple(rec), (chunk.sha256, str(final)))

    def _chunked_record(self, device: str, msg: Inbound) -> Inbound | None:
        """A record larger than the broker's packet limit arrives in chunks: the whole sidecar, once complete."""
        chunk = self._parts.parse(msg, self.limits.max_record_bytes)
        final = self._parts.add(device, chunk)
        if final is None:
            return None
        payload = final.read_bytes()
        final.unlink()
        props = (("seq", str(chunk.seq)), ("kind", chunk.kind))
        return dataclasses.replace(msg, payload=payload, user_props=props)

    def _place_media(self, device: str, item: str, rec: Sequence[Any], med: Sequence[Any]) -> bool:
        """Move complete media next to its record once both are here (either may come first); True if moved.
        ``rec`` is the record's (seq, kind, media_name, media_sha256, media_done), ``med`` the media's
        (sha256, path), both as stored in this transaction."""
        if rec[4]:
            return False
        seq, kind, sha = rec[0], rec[1], rec[3]
        name = canonical_media_name(seq, kind, rec[2])  # checked when stored; checked again before a write
        if med[0] != sha:
            raise Refused(f"media of seq {seq} has SHA-256 {med[0][:12]}, its record says {sha[:12]}", 0x83,
                          "media_mismatch")
        bucket = self._bucket(device, seq)
        # Blob first: if the store cannot take it now (BlobError is an OSError), nothing has moved and the
        # message stays unacknowledged for a retry.
        blob = None if self.blobs is None else self.blobs.put_file(sha, Path(med[1]), self._sync)
        os.replace(med[1], bucket / name)
        self._moves.append((str(med[1]), str(bucket / name)))
        self._sync.moved(bucket / name)
        self._db.execute("UPDATE records SET media_done=1 WHERE device=? AND item=?", (device, item))
        if self.index is not None:
            self.index.media_stored(device, item, blob or str((bucket / name).relative_to(self.out)))
        self._db.execute("UPDATE media SET path=? WHERE device=? AND item=?", (str(bucket / name), device, item))
        return True

    def _chain_broken(self, device: str, seq: int, found: list[str]) -> None:
        """Incremental verification found this record at odds with its stored neighbours (store/chain.py)."""
        count(self._db, device, "refused")
        count(self._db, device, "refused:chain_broken")
        log.error("%s seq %d: %s", device, seq, "; ".join(found))

    # -- bookkeeping ----------------------------------------------------------------------------
    def _refuse(self, msg: Inbound, device: str, exc: Refused) -> None:
        log.error("refused message on %.200s: %.300s (%s, 0x%02x)", msg.topic, exc, exc.reason, exc.code)
        count(self._db, device, "refused")
        count(self._db, device, f"refused:{exc.reason}")
        self._quarantine.put(device, msg, exc)

    def note_retained(self, junk: Sequence[RetainedJunk]) -> None:
        """Retained messages found where none belong (agent/customs/retained.py): findings in the report."""
        with self._lock:
            for j in junk:
                self._live.setdefault(j.device, {}).setdefault("retained", []).append(
                    {"topic": j.topic, "bytes": j.size})

    def report(self) -> dict[str, DeviceReport]:
        """Per device: records, missing sequence numbers, incomplete media, duplicates, forks, refusals."""
        with self._lock, self._db.reading():
            out = build_report(self._db)
            for device, live in self._live.items():
                rep = out.setdefault(device, DeviceReport(site="?"))
                rep.status = live.get("status")
                rep.availability = live.get("availability")
                rep.retained_junk = live.get("retained", [])
                rep.retained_junk_count = len(rep.retained_junk)
                upto = delivered_upto(rep.status)
                if upto is not None:
                    lost_after_delivery(self._db, device, upto, rep)
            return out

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""Durable store-and-forward outbox (SQLite, WAL): nothing sealed is lost to a bad uplink.

paho's session lives in memory (DESIGN-NOTES §4), so every sealed record and its media is written
here first and an entry leaves only after the broker's successful PUBACK. Records and alerts go
before bulk media; within a priority the oldest goes first. Refusals are never silent: retryable
reason codes back off, oversized chunks are re-cut smaller, and anything else is kept as
``rejected`` with its reason code for an operator to see (status) and retry.

Only the dispatcher thread touches the database; the Sealer listener and paho callbacks hand their
work over through queues, so neither sealing nor the network thread ever waits on a disk write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.core.model import SealedItem
from agent.core.threads import Worker
from agent.uplink.backlog import sidecar_props, unqueued_items
from agent.wire.chunks import MIN_CHUNK, MediaRef, chunk_count, chunk_props, chunk_size_for, fits
from agent.wire.mqtt import NO_MATCHING_SUBSCRIBERS, MqttLink, PublishResult
from agent.wire.topics import DeviceTopics

log = logging.getLogger(__name__)
T = TypeVar("T")

PRIORITY = {"record": 0, "alert": 0, "receipt": 1, "media": 2}
RETRYABLE = {0x89, 0x97, 0x9F}  # server busy, quota exceeded, connection rate exceeded
TOO_BIG = {0x95}  # packet too large: mosquitto answers message_size_limit overflows with PUBACK 0x95
SIDECAR_TYPE = "application/vnd.evidence.sidecar"
CHUNKABLE = frozenset({"record", "alert"})  # signed sidecars: the ingest reassembles them when chunked
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT, priority INTEGER NOT NULL, channel TEXT NOT NULL,
  item TEXT NOT NULL, seq INTEGER, kind TEXT, payload BLOB, path TEXT, size INTEGER NOT NULL,
  props TEXT NOT NULL, content_type TEXT, chunk_size INTEGER, total INTEGER,
  state TEXT NOT NULL DEFAULT 'pending', reason TEXT, created_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_order ON entries(state, priority, id);
CREATE TABLE IF NOT EXISTS acked (entry INTEGER NOT NULL, idx INTEGER NOT NULL,
  PRIMARY KEY (entry, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (item TEXT NOT NULL, channel TEXT NOT NULL, seq INTEGER,
  at_ns INTEGER NOT NULL, PRIMARY KEY (item, channel)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class _Entry:
    id: int
    channel: str
    item: str
    seq: int | None
    kind: str | None
    payload: bytes | None
    path: str | None
    size: int
    props: list[tuple[str, str]]
    content_type: str | None
    chunk_size: int | None
    total: int | None


def _drain(q: queue.Queue[T]) -> list[T]:
    """Everything queued right now, without waiting."""
    out: list[T] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    pending_bytes: int
    rejected: int
    in_flight: int
    delivered: int
    oldest_age_s: float | None
    last_sealed: dict[str, Any] | None


class Outbox:
    """SQLite outbox + dispatcher thread. ``on_sealed`` is the Sealer listener."""

    def __init__(self, path: Path, link: MqttLink, topics: DeviceTopics, *, chunk_bytes: int = 256 * 1024,
                 window_bytes: int = 8 * 1024 * 1024, max_inflight: int = 32,
                 alert_kinds: tuple[str, ...] = ("event", "tamper", "alert"), require_subscriber: bool = True,
                 retry_after_s: float = 5.0, vault_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.link = link
        self.topics = topics
        self.chunk_bytes = chunk_bytes
        self.window_bytes = window_bytes
        self.max_inflight = max_inflight
        self.alert_kinds = set(alert_kinds)
        self.require_subscriber = require_subscriber
        self.retry_after_s = retry_after_s
        self.vault_dir = vault_dir
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._new: queue.Queue[SealedItem | tuple[str, bytes, int, list[tuple[str, str]], str]] = queue.Queue()
        self._done: queue.Queue[tuple[int, int, int, PublishResult]] = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the counters read by other threads
        self._inflight: dict[tuple[int, int], int] = {}
        self._acked: dict[int, set[int]] = {}
        self._paused_until = 0.0
        self._last_sealed: dict[str, Any] | None = None
        self._delivered = 0
        self._counts = (0, 0, 0)
        self._dirty = False
        self._counted_at = 0.0
        self._refresh_counts()
        self._thread = Worker("outbox-dispatch", self._run, stopping=self._stop)
        self._started = False
        self._closed = False

    # -- producers (any thread, never block) ----------------------------------------------------
    def on_sealed(self, item: SealedItem) -> None:
        """Sealer listener: queue the item; the dispatcher makes it durable."""
        with self._lock:
            self._last_sealed = {"seq": item.seq, "kind": item.kind, "hash": item.record_hash}
        self._new.put(item)
        self._wake.set()

    def enqueue_message(self, channel: str, payload: bytes, *, item: str = "", priority: int | None = None,
                        user_props: list[tuple[str, str]] | None = None,
                        content_type: str = "application/json") -> None:
        """Queue one small message (e.g. an anchor receipt) on a device channel."""
        self.topics.channel(channel)
        prio = PRIORITY.get(channel, 1) if priority is None else priority
        self._new.put((channel, payload, prio, list(user_props or [("item", item)]), content_type))
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.stop(30)
        self._db.close()

    # -- status ---------------------------------------------------------------------------------
    def _refresh_counts(self) -> None:
        pending, pbytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size),0) FROM entries WHERE state='pending'").fetchone()
        rejected = self._db.execute("SELECT COUNT(*) FROM entries WHERE state='rejected'").fetchone()[0]
        oldest = self._db.execute("SELECT MIN(created_ns) FROM entries WHERE state='pending'").fetchone()[0]
        with self._lock:
            self._counts = (int(pending), int(pbytes), int(rejected))
            self._oldest_ns = oldest
        self._dirty = False
        self._counted_at = time.monotonic()

    def stats(self) -> OutboxStats:
        with self._lock:
            pending, pbytes, rejected = self._counts
            age = None if self._oldest_ns is None else max(0.0, (time.time_ns() - self._oldest_ns) / 1e9)
            return OutboxStats(pending=pending + self._new.qsize(), pending_bytes=pbytes, rejected=rejected,
                               in_flight=len(self._inflight), delivered=self._delivered, oldest_age_s=age,
                               last_sealed=self._last_sealed)

    def wait_drained(self, timeout: float) -> bool:
        """True once nothing is pending (rejected entries are not pending: check stats().rejected)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.stats()
            if s.pending == 0 and s.in_flight == 0 and self._done.empty():
                return True
            time.sleep(0.05)
        return False

    def rejected(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT id, channel, item, seq, kind, reason FROM entries "
                                "WHERE state='rejected' ORDER BY id").fetchall()
        return [dict(zip(("id", "channel", "item", "seq", "kind", "reason"), r, strict=True)) for r in rows]

    def retry_rejected(self) -> None:
        self._new.put(("__retry__", b"", 0, [], ""))
        self._wake.set()

    def is_delivered(self, record_hash: str, channel: str = "media") -> bool:
        """For the vault quota policy: media may be evicted only once delivered."""
        row = self._db.execute("SELECT 1 FROM delivered WHERE item=? AND channel=?",
                               (record_hash, channel)).fetchone()
        return row is not None

    # -- dispatcher -----------------------------------------------------------------------------
    def _run(self, stopping: threading.Event) -> None:
        try:
            if self.vault_dir is not None:
                self._catch_up(self.vault_dir)
            while not stopping.is_set():
                self._wake.wait(0.2)
                self._wake.clear()
                self._take_new()
                self._take_done()
                if self.link.connected and time.monotonic() >= self._paused_until:
                    self._fill()
        except Exception:
            log.exception("outbox dispatcher stopped on an unexpected error")
            raise

    def _high_seq(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='high_seq'").fetchone()
        return -1 if row is None else int(row[0])

    def _catch_up(self, vault_dir: Path) -> None:
        """Enqueue sealed items the listener never saw (killed between sealing and enqueueing)."""
        found = 0
        for item in unqueued_items(vault_dir, self._high_seq()):
            self._insert_item(item)
            found += 1
        if found:
            log.info("outbox: queued %d sealed item(s) from %s not yet in the outbox", found, vault_dir)
            self._refresh_counts()

    def _take_new(self) -> None:
        batch: list[Any] = _drain(self._new)
        if not batch:
            return
        self._db.execute("PRAGMA synchronous=FULL")  # an enqueue must survive power loss
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for entry in batch:
                if isinstance(entry, SealedItem):
                    self._insert_item(entry)
                elif entry[0] == "__retry__":
                    self._db.execute("UPDATE entries SET state='pending', reason=NULL WHERE state='rejected'")
                else:
                    channel, payload, prio, props, ctype = entry
                    self._insert(prio, channel, props[0][1] if props else "", None, None, payload, None,
                                 len(payload), props, ctype)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._refresh_counts()

    def _insert(self, prio: int, channel: str, item: str, seq: int | None, kind: str | None,
                payload: bytes | None, path: str | None, size: int, props: list[tuple[str, str]],
                ctype: str | None) -> None:
        self._db.execute(
            "INSERT INTO entries (priority, channel, item, seq, kind, payload, path, size, props, content_type,"
            " created_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (prio, channel, item, seq, kind, payload, path, size, json.dumps(props), ctype, time.time_ns()))

    def _insert_item(self, item: SealedItem) -> None:
        if item.seq <= self._high_seq():
            return  # already queued (catch-up and listener both saw it)
        try:
            sidecar = Path(item.record_path).read_bytes()
        except OSError as exc:
            log.error("outbox: sidecar of seq %d unreadable: %s", item.seq, exc)
            return
        props = sidecar_props(item)
        self._insert(PRIORITY["record"], "record", item.record_hash, item.seq, item.kind, sidecar, None,
                     len(sidecar), props, SIDECAR_TYPE)
        if item.kind in self.alert_kinds:
            self._insert(PRIORITY["alert"], "alert", item.record_hash, item.seq, item.kind, sidecar, None,
                         len(sidecar), props, SIDECAR_TYPE)
        media = item.record.get("media") or None
        if media and item.media_path:
            ref = MediaRef(item.record_hash, item.seq, item.kind, str(media["name"]), str(media["sha256"]),
                           int(media["size"]), str(media.get("type") or "application/octet-stream"))
            self._insert(PRIORITY["media"], "media", item.record_hash, item.seq, item.kind, None,
                         item.media_path, ref.size, [("ref", json.dumps(ref.__dict__))], ref.content_type)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('high_seq', ?)", (str(item.seq),))

    # -- acknowledgements -----------------------------------------------------------------------
    def _take_done(self) -> None:
        results: list[tuple[int, int, int, PublishResult]] = _drain(self._done)
        if not results:
            return
        self._db.execute("PRAGMA synchronous=NORMAL")  # losing an ack to power loss only means a resend
        self._db.execute("BEGIN")
        try:
            for entry_id, idx, gen, result in results:
                with self._lock:
                    self._inflight.pop((entry_id, idx), None)
                self._settle(entry_id, idx, gen, result)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if self._dirty or time.monotonic() - self._counted_at > 1.0:  # deletes already counted in memory
            self._refresh_counts()

    def _settle(self, entry_id: int, idx: int, gen: int, r: PublishResult) -> None:
        row = self._db.execute("SELECT channel, item, seq, total, chunk_size, state, size FROM entries "
                               "WHERE id=?", (entry_id,)).fetchone()
        chunked = row is not None and (row[0] == "media" or row[3] is not None)  # records over the limit too
        if row is None or row[5] != "pending" or (chunked and row[4] != gen):
            return  # settled already, or an answer about chunks of a size since abandoned
        channel, item, seq, total, chunk_size = row[:5]
        if r.ok and not (r.code == NO_MATCHING_SUBSCRIBERS and self.require_subscriber):
            if not chunked:
                self._delete(entry_id, item, channel, seq, row[6])
                return
            self._db.execute("INSERT OR IGNORE INTO acked VALUES (?,?)", (entry_id, idx))
            acked = self._acked.setdefault(entry_id, set())
            acked.add(idx)
            if total is not None and len(acked) >= total:
                self._delete(entry_id, item, channel, seq, row[6])
            return
        if r.ok or r.code in RETRYABLE:
            why = "no subscriber would store it" if r.ok else r.reason
            log.warning("outbox: broker answered %s (0x%02x) for entry %d: %s; retrying in %.0f s",
                        r.reason, r.code, entry_id, why, self.retry_after_s)
            self._paused_until = time.monotonic() + self.retry_after_s
            return
        if channel == "media" and r.code in TOO_BIG and chunk_size and chunk_size // 2 >= MIN_CHUNK:
            log.warning("outbox: broker refused a %d-byte chunk (%s); re-cutting entry %d at %d bytes",
                        chunk_size, r.reason, entry_id, chunk_size // 2)
            self.chunk_bytes = min(self.chunk_bytes, chunk_size // 2)
            self._db.execute("UPDATE entries SET chunk_size=?, total=NULL WHERE id=?", (chunk_size // 2, entry_id))
            self._db.execute("DELETE FROM acked WHERE entry=?", (entry_id,))
            self._acked.pop(entry_id, None)
            with self._lock:
                for key in [k for k in self._inflight if k[0] == entry_id]:
                    self._inflight.pop(key)
            return
        reason = f"{r.reason} (0x{r.code:02x})"
        log.error("outbox: broker refused %s of seq %s: %s; kept as rejected (not deleted)", channel, seq, reason)
        self._db.execute("UPDATE entries SET state='rejected', reason=? WHERE id=?", (reason, entry_id))
        self._dirty = True

    def _delete(self, entry_id: int, item: str, channel: str, seq: int | None, size: int) -> None:
        self._db.execute("DELETE FROM entries WHERE id=?", (entry_id,))
        self._db.execute("DELETE FROM acked WHERE entry=?", (entry_id,))
        self._db.execute("INSERT OR REPLACE INTO delivered VALUES (?,?,?,?)", (item, channel, seq, time.time_ns()))
        self._acked.pop(entry_id, None)
        with self._lock:
            self._delivered += 1
            pending, pbytes, rejected = self._counts
            self._counts = (pending - 1, pbytes - size, rejected)

    # -- sending --------------------------------------------------------------------------------
    def _window_full(self) -> bool:
        with self._lock:
            n, nbytes = len(self._inflight), sum(self._inflight.values())
        return n >= min(self.max_inflight, self.link.receive_maximum) or nbytes >= self.window_bytes

    def _fill(self) -> None:
        if self._window_full():
            return
        rows = self._db.execute(
            "SELECT id, channel, item, seq, kind, payload, path, size, props, content_type, chunk_size, total "
            "FROM entries WHERE state='pending' ORDER BY priority, id LIMIT 64").fetchall()
        for row in rows:
            e = _Entry(*row[:8], [tuple(p) for p in json.loads(row[8])], *row[9:])  # type: ignore[misc,call-arg]
            if e.channel == "media":
                if not self._send_media(e):
                    return
            elif e.channel in CHUNKABLE and (e.total is not None or not fits(
                    self.topics.channel(e.channel), e.props, len(e.payload or b""), self.link.max_packet_size)):
                if not self._send_chunked_record(e):
                    return
            elif (e.id, 0) not in self._inflight:
                self._send(e.id, 0, self.topics.channel(e.channel), e.payload or b"", e.props, e.content_type)
            if self._window_full():
                return

    def _send(self, entry_id: int, idx: int, topic: str, payload: bytes, props: list[tuple[str, str]],
              ctype: str | None, gen: int = 0) -> bool:
        key = (entry_id, idx)

        def done(r: PublishResult) -> None:  # paho thread: hand over, never block
            self._done.put((entry_id, idx, gen, r))
            self._wake.set()

        with self._lock:
            self._inflight[key] = len(payload)
        try:
            self.link.publish(topic, payload, qos=1, user_props=props, content_type=ctype, on_done=done)
        except Exception as exc:  # too large for this broker, or the client refused it
            with self._lock:
                self._inflight.pop(key, None)
            log.error("outbox: cannot publish entry %d on %s: %s; kept as rejected", entry_id, topic, exc)
            self._db.execute("UPDATE entries SET state='rejected', reason=? WHERE id=?", (str(exc), entry_id))
            self._refresh_counts()
            return False
        return True

    def _send_media(self, e: _Entry) -> bool:
        ref = MediaRef(**json.loads(e.props[0][1]))
        topic = self.topics.media
        if e.chunk_size is None or e.total is None or e.chunk_size > chunk_size_for(
                self.link.max_packet_size, topic, e.chunk_size):
            try:
                size = chunk_size_for(self.link.max_packet_size, topic, e.chunk_size or self.chunk_bytes)
            except ValueError as exc:
                self._reject(e.id, str(exc))
                return True
            e.chunk_size, e.total = size, chunk_count(ref.size, size)
            self._db.execute("UPDATE entries SET chunk_size=?, total=? WHERE id=?", (size, e.total, e.id))
            self._db.execute("DELETE FROM acked WHERE entry=?", (e.id,))
            self._acked[e.id] = set()
        if e.id not in self._acked:
            self._acked[e.id] = {r[0] for r in self._db.execute("SELECT idx FROM acked WHERE entry=?", (e.id,))}
        acked = self._acked[e.id]
        try:
            fh = open(e.path or "", "rb")  # noqa: SIM115 - closed below, many reads
        except OSError as exc:
            self._reject(e.id, f"media file unreadable: {exc}")
            return True
        with fh:
            for idx in range(e.total):
                if idx in acked or (e.id, idx) in self._inflight:
                    continue
                offset = idx * e.chunk_size
                fh.seek(offset)
                data = fh.read(e.chunk_size)
                if offset + len(data) > ref.size or (not data and ref.size):
                    self._reject(e.id, f"media file {e.path} changed size since it was sealed")
                    return True
                if not self._send(e.id, idx, topic, data, chunk_props(ref, idx, e.total, offset, data),
                                  ref.content_type, gen=e.chunk_size):
                    return False
                if self._window_full():
                    return False
        return True

    def _send_chunked_record(self, e: _Entry) -> bool:
        """A record or alert larger than the broker's packet limit (a TSA receipt is ~4 KB) goes in chunks on
        its own topic; the ingest reassembles and checks it like media. Never silently dropped."""
        payload = e.payload or b""
        topic = self.topics.channel(e.channel)
        if e.total is None or e.chunk_size is None:
            try:
                size = chunk_size_for(self.link.max_packet_size, topic, self.chunk_bytes)
            except ValueError as exc:
                self._reject(e.id, str(exc))
                return True
            e.chunk_size, e.total = size, chunk_count(len(payload), size)
            self._db.execute("UPDATE entries SET chunk_size=?, total=? WHERE id=?", (size, e.total, e.id))
        ref = MediaRef(hashlib.sha256(payload).hexdigest(), e.seq or 0, e.kind or e.channel,
                       f"{e.seq or 0:012d}.{e.kind or e.channel}.rec", hashlib.sha256(payload).hexdigest(),
                       len(payload), e.content_type or SIDECAR_TYPE)
        acked = self._acked.setdefault(
            e.id, {r[0] for r in self._db.execute("SELECT idx FROM acked WHERE entry=?", (e.id,))})
        for idx in range(e.total):
            if idx in acked or (e.id, idx) in self._inflight:
                continue
            offset = idx * e.chunk_size
            data = payload[offset:offset + e.chunk_size]
            if not self._send(e.id, idx, topic, data, chunk_props(ref, idx, e.total, offset, data),
                              ref.content_type, gen=e.chunk_size):
                return False
            if self._window_full():
                return False
        return True

    def _reject(self, entry_id: int, reason: str) -> None:
        log.error("outbox: entry %d rejected: %s (kept, not deleted)", entry_id, reason)
        self._db.execute("UPDATE entries SET state='rejected', reason=? WHERE id=?", (reason, entry_id))
        self._refresh_counts()

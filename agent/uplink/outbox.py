"""Durable store-and-forward outbox: nothing sealed is lost to a bad uplink.

Every sealed record and its media goes into the SQLite store (:mod:`agent.uplink.outbox_store`) first,
and an entry leaves only after the broker's successful PUBACK. Records and alerts go before bulk media;
within a priority the oldest goes first. Refusals are never silent: retryable reason codes back off,
oversized chunks are re-cut smaller, and anything else is kept as ``rejected`` with its reason code for
an operator to see (status) and retry.

Only the dispatcher thread writes the store; the Sealer listener and paho callbacks hand their work over
through two typed queues, so neither sealing nor the network thread ever waits on a disk write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from agent.core.model import SealedItem
from agent.core.threads import Worker
from agent.core.vocab import ALERT_KINDS
from agent.uplink.backlog import unqueued_items
from agent.uplink.outbox_jobs import Ack, Job, Message, OutboxStats, RetryRejected
from agent.uplink.outbox_store import PRIORITY, SIDECAR_TYPE, Entry, OutboxStore
from agent.wire.chunks import MIN_CHUNK, MediaRef, chunk_count, chunk_props, chunk_size_for, fits
from agent.wire.mqtt import NO_MATCHING_SUBSCRIBERS, MqttLink, PublishResult
from agent.wire.topics import DeviceTopics

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE = {0x89, 0x97, 0x9F}  # server busy, quota exceeded, connection rate exceeded
TOO_BIG = {0x95}  # packet too large: mosquitto answers message_size_limit overflows with PUBACK 0x95
CHUNKABLE = frozenset({"record", "alert"})  # signed sidecars: the ingest reassembles them when chunked
UNREADABLE_REJECT_S = 120.0  # a media file unreadable this long is kept as rejected (an operator requeues it)



def _drain(q: queue.Queue[T]) -> list[T]:
    """Everything queued right now, without waiting."""
    out: list[T] = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


class Outbox:
    """The dispatcher thread over the store. ``on_sealed`` is the Sealer listener."""

    def __init__(self, path: Path, link: MqttLink, topics: DeviceTopics, *, chunk_bytes: int = 256 * 1024,
                 window_bytes: int = 8 * 1024 * 1024, max_inflight: int = 32,
                 alert_kinds: tuple[str, ...] = ALERT_KINDS, require_subscriber: bool = True,
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
        self.store = OutboxStore(self.path)
        self._new: queue.Queue[Job] = queue.Queue()
        self._done: queue.Queue[Ack] = queue.Queue()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards the counters read by other threads
        self._inflight: dict[tuple[int, int], int] = {}
        self._acked: dict[int, set[int]] = {}
        self._paused_until = 0.0
        self._last_sealed: dict[str, Any] | None = None
        self._delivered = 0
        self._counts = (0, 0, 0)
        self._oldest_ns: int | None = None
        self._dirty = False
        self._counted_at = 0.0
        self._refresh_counts()
        self._thread = Worker("outbox-dispatch", self._run)
        self._carry_new: list[Job] = []  # taken from the queues but not yet stored (the store failed)
        self._carry_done: list[Ack] = []
        self._life = threading.Lock()  # start/restart/close
        self._unreadable: dict[int, float] = {}  # entry id -> when its media file was first unreadable
        self.loop_mono = time.monotonic()  # the dispatcher's last turn (health: a hung loop shows)
        self.last_error: str | None = None  # the store failure that ended the last dispatcher, until it recovers
        self._started = False
        self._closed = False

    # -- producers (any thread, never block) ----------------------------------------------------
    def on_sealed(self, item: SealedItem) -> None:
        """Sealer listener: queue the item; the dispatcher makes it durable."""
        with self._lock:
            self._last_sealed = {"seq": item.seq, "kind": item.kind, "hash": item.record_hash}
        self._put(item)

    def enqueue_message(self, channel: str, payload: bytes, *, item: str = "", priority: int | None = None,
                        user_props: list[tuple[str, str]] | None = None,
                        content_type: str = "application/json") -> None:
        """Queue one small message (e.g. an anchor receipt) on a device channel."""
        self.topics.channel(channel)
        prio = PRIORITY.get(channel, 1) if priority is None else priority
        self._put(Message(channel, payload, prio, tuple(user_props or [("item", item)]), content_type))

    def retry_rejected(self) -> None:
        self._put(RetryRejected())

    def _put(self, job: Job) -> None:
        self._new.put(job)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def restart(self) -> None:
        """A new dispatcher after the last one died (the supervisor's restart): the store holds the state;
        what the dead one had taken from the queues is carried over, chunk acks are re-read from the store."""
        with self._life:
            if self._closed or self._thread.is_alive():
                return
            self._acked.clear()
            self._thread = Worker("outbox-dispatch", self._run)
            self._thread.start()

    @property
    def dispatching(self) -> bool:
        """The dispatcher thread runs (it may be idle: nothing to send, or no link)."""
        return self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        """Told to stop (closing): a dispatcher that ended then ended on purpose."""
        return self._closed or self._thread.stopping.is_set()

    def close(self) -> None:
        with self._life:  # never a restart racing the close
            if self._closed:
                return
            self._closed = True
        self._thread.stopping.set()
        self._wake.set()
        self._thread.stop(30)
        self.store.close()

    # -- status ---------------------------------------------------------------------------------
    def _refresh_counts(self) -> None:
        c = self.store.counts()
        with self._lock:
            self._counts = (c.pending, c.pending_bytes, c.rejected)
            self._oldest_ns = c.oldest_ns
        self._dirty = False
        self._counted_at = time.monotonic()

    def stats(self) -> OutboxStats:
        with self._lock:
            pending, pbytes, rejected = self._counts
            age = None if self._oldest_ns is None else max(0.0, (time.time_ns() - self._oldest_ns) / 1e9)
            return OutboxStats(pending=pending + self._new.qsize() + len(self._carry_new), pending_bytes=pbytes,
                               rejected=rejected,
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
        return self.store.rejected()

    def is_delivered(self, record_hash: str, channel: str = "media") -> bool:
        """For the vault quota policy: media may be evicted only once delivered."""
        return self.store.is_delivered(record_hash, channel)

    # -- dispatcher -----------------------------------------------------------------------------
    def _run(self, stopping: threading.Event) -> None:
        try:
            if self.vault_dir is not None:
                self._catch_up(self.vault_dir)
            while not stopping.is_set():
                self.loop_mono = time.monotonic()
                self._wake.wait(0.2)
                self._wake.clear()
                self._take_new()
                self._take_done()
                if self.link.connected and time.monotonic() >= self._paused_until:
                    self._fill()
                self.last_error = None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("outbox dispatcher stopped on an unexpected error")
            raise

    def _catch_up(self, vault_dir: Path) -> None:
        """Enqueue sealed items the listener never saw (killed between sealing and enqueueing)."""
        found = 0
        for item in unqueued_items(vault_dir, self.store.high_seq()):
            self.store.add_item(item, self.alert_kinds)
            found += 1
        if found:
            log.info("outbox: queued %d sealed item(s) from %s not yet in the outbox", found, vault_dir)
            self._refresh_counts()

    def _take_new(self) -> None:
        batch = self._carry_new + _drain(self._new)
        if not batch:
            return
        self._carry_new = batch  # until the transaction commits: a failed store keeps them for the next try
        with self.store.transaction(durable=True):
            for job in batch:
                if isinstance(job, SealedItem):
                    self.store.add_item(job, self.alert_kinds)
                elif isinstance(job, RetryRejected):
                    self.store.retry_rejected()
                else:
                    item = job.props[0][1] if job.props else ""
                    self.store.add(job.priority, job.channel, item, None, None, job.payload, None,
                                   len(job.payload), list(job.props), job.content_type)
        self._carry_new = []
        self._refresh_counts()

    # -- acknowledgements -----------------------------------------------------------------------
    def _take_done(self) -> None:
        acks = self._carry_done + _drain(self._done)
        if not acks:
            return
        self._carry_done = acks
        with self.store.transaction(durable=False):
            for ack in acks:
                with self._lock:
                    self._inflight.pop((ack.entry_id, ack.idx), None)
                self._settle(ack)
        self._carry_done = []
        if self._dirty or time.monotonic() - self._counted_at > 1.0:  # deletes already counted in memory
            self._refresh_counts()

    def _settle(self, ack: Ack) -> None:
        e, r = self.store.get(ack.entry_id), ack.result
        if e is None or e.state != "pending" or (e.chunked and e.chunk_size != ack.gen):
            return  # settled already, or an answer about chunks of a size since abandoned
        if r.ok and not (r.code == NO_MATCHING_SUBSCRIBERS and self.require_subscriber):
            if not e.chunked:
                self._deliver(e)
                return
            self.store.ack_chunk(e.id, ack.idx)
            acked = self._acked.setdefault(e.id, set())
            acked.add(ack.idx)
            if e.total is not None and len(acked) >= e.total:
                self._deliver(e)
            return
        if r.ok or r.code in RETRYABLE:
            why = "no subscriber would store it" if r.ok else r.reason
            log.warning("outbox: broker answered %s (0x%02x) for entry %d: %s; retrying in %.0f s",
                        r.reason, r.code, e.id, why, self.retry_after_s)
            self._paused_until = time.monotonic() + self.retry_after_s
            return
        if e.channel == "media" and r.code in TOO_BIG and e.chunk_size and e.chunk_size // 2 >= MIN_CHUNK:
            log.warning("outbox: broker refused a %d-byte chunk (%s); re-cutting entry %d at %d bytes",
                        e.chunk_size, r.reason, e.id, e.chunk_size // 2)
            self.chunk_bytes = min(self.chunk_bytes, e.chunk_size // 2)
            self.store.cut(e.id, e.chunk_size // 2, None)
            self._acked.pop(e.id, None)
            with self._lock:
                for key in [k for k in self._inflight if k[0] == e.id]:
                    self._inflight.pop(key)
            return
        reason = f"{r.reason} (0x{r.code:02x})"
        log.error("outbox: broker refused %s of seq %s: %s; kept as rejected (not deleted)", e.channel, e.seq, reason)
        self.store.reject(e.id, reason)
        self._dirty = True

    def _deliver(self, e: Entry) -> None:
        self.store.deliver(e)
        self._acked.pop(e.id, None)
        with self._lock:
            self._delivered += 1
            pending, pbytes, rejected = self._counts
            self._counts = (pending - 1, pbytes - e.size, rejected)

    # -- sending --------------------------------------------------------------------------------
    def _window_full(self) -> bool:
        with self._lock:
            n, nbytes = len(self._inflight), sum(self._inflight.values())
        return n >= min(self.max_inflight, self.link.receive_maximum) or nbytes >= self.window_bytes

    def _fill(self) -> None:
        if self._window_full():
            return
        for e in self.store.pending():
            topic = self.topics.channel(e.channel)
            if e.channel == "media":
                if not self._send_media(e, topic):
                    return
            elif e.channel in CHUNKABLE and (e.total is not None or not fits(
                    topic, list(e.props), len(e.payload or b""), self.link.max_packet_size)):
                if not self._send_chunked_record(e, topic):
                    return
            elif (e.id, 0) not in self._inflight:
                self._send(e.id, 0, topic, e.payload or b"", list(e.props), e.content_type)
            if self._window_full():
                return

    def _send(self, entry_id: int, idx: int, topic: str, payload: bytes, props: list[tuple[str, str]],
              ctype: str | None, gen: int = 0) -> bool:
        def done(r: PublishResult) -> None:  # paho thread: hand over, never block
            self._done.put(Ack(entry_id, idx, gen, r))
            self._wake.set()

        with self._lock:
            self._inflight[(entry_id, idx)] = len(payload)
        try:
            self.link.publish(topic, payload, qos=1, user_props=props, content_type=ctype, on_done=done)
        except Exception as exc:  # too large for this broker, or the client refused it
            with self._lock:
                self._inflight.pop((entry_id, idx), None)
            log.error("outbox: cannot publish entry %d on %s: %s; kept as rejected", entry_id, topic, exc)
            self.store.reject(entry_id, str(exc))
            self._refresh_counts()
            return False
        return True

    def _cut(self, e: Entry, topic: str, size: int) -> Entry | None:
        """``e`` cut into chunks that fit this broker (re-cut when the broker's limit shrank); None if it
        cannot be cut (rejected)."""
        if e.chunk_size is not None and e.total is not None and e.chunk_size <= chunk_size_for(
                self.link.max_packet_size, topic, e.chunk_size):
            return e
        try:
            chunk = chunk_size_for(self.link.max_packet_size, topic, e.chunk_size or self.chunk_bytes)
        except ValueError as exc:
            self._reject(e.id, str(exc))
            return None
        e = replace(e, chunk_size=chunk, total=chunk_count(size, chunk))
        self.store.cut(e.id, chunk, e.total)
        self._acked[e.id] = set()
        return e

    def _send_media(self, e: Entry, topic: str) -> bool:
        ref = MediaRef(**json.loads(e.props[0][1]))
        cut = self._cut(e, topic, ref.size)
        if cut is None:
            return True
        try:
            fh = open(e.path or "", "rb")  # noqa: SIM115 - closed below, many reads
        except OSError as exc:  # a failing card or a vault being repaired: retried before it counts as gone
            first = self._unreadable.setdefault(e.id, time.monotonic())
            if time.monotonic() - first >= UNREADABLE_REJECT_S:
                self._unreadable.pop(e.id, None)
                self._reject(e.id, f"media file unreadable for {UNREADABLE_REJECT_S:g} s: {exc}")
            else:
                log.warning("outbox: media of entry %d unreadable (%s); retrying", e.id, exc)
                self._paused_until = time.monotonic() + self.retry_after_s
            return False
        self._unreadable.pop(e.id, None)

        def read(offset: int, n: int) -> bytes:
            fh.seek(offset)
            return fh.read(n)

        with fh:
            return self._send_chunks(cut, topic, ref, read, f"media file {e.path}")

    def _send_chunked_record(self, e: Entry, topic: str) -> bool:
        """A record or alert larger than the broker's packet limit (a TSA receipt is ~4 KB) goes in chunks on
        its own topic; the ingest reassembles and checks it like media. Never silently dropped."""
        payload = e.payload or b""
        cut = self._cut(e, topic, len(payload))
        if cut is None:
            return True
        digest = hashlib.sha256(payload).hexdigest()
        ref = MediaRef(digest, e.seq or 0, e.kind or e.channel, f"{e.seq or 0:012d}.{e.kind or e.channel}.rec",
                       digest, len(payload), e.content_type or SIDECAR_TYPE)
        return self._send_chunks(cut, topic, ref, lambda offset, n: payload[offset:offset + n], "record")

    def _send_chunks(self, e: Entry, topic: str, ref: MediaRef, read: Callable[[int, int], bytes],
                     what: str) -> bool:
        """Publish the chunks not yet acknowledged or in flight; False once the window is full."""
        assert e.chunk_size is not None and e.total is not None  # cut by _cut
        if e.id not in self._acked:
            self._acked[e.id] = self.store.acked(e.id)
        acked = self._acked[e.id]
        for idx in range(e.total):
            if idx in acked or (e.id, idx) in self._inflight:
                continue
            offset = idx * e.chunk_size
            data = read(offset, e.chunk_size)
            if offset + len(data) > ref.size or (not data and ref.size):
                self._reject(e.id, f"{what} changed size since it was sealed")
                return True
            if not self._send(e.id, idx, topic, data, chunk_props(ref, idx, e.total, offset, data),
                              ref.content_type, gen=e.chunk_size):
                return False
            if self._window_full():
                return False
        return True

    def _reject(self, entry_id: int, reason: str) -> None:
        log.error("outbox: entry %d rejected: %s (kept, not deleted)", entry_id, reason)
        self.store.reject(entry_id, reason)
        self._refresh_counts()

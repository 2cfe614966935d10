"""Flow control for the ingest's receive path: bounded work in flight, acknowledged only once stored.

Why: Mosquitto 2.0 pushes thousands of unacknowledged QoS 1 messages to a slow subscriber whatever
Receive Maximum says. The old receive path put them in a fixed queue and, when it was full, left the
overflow unacknowledged — on an MQTT v5 session the broker does not resend those until a reconnect,
so storing stopped for good (a 10 000-record burst stalled at ~6 400 records).

Here nothing is ever dropped. Every delivered message joins the in-flight set; the MQTT link stops
*reading its socket* while the set is at its bound (count or bytes), so TCP pushes back on the broker,
which keeps the rest queued in the session. A worker thread takes batches, hands each batch to the
store (one transaction, one round of fsyncs), and acknowledges a message only after its batch is
durable; acknowledging frees room and the link reads on. A batch that fails is retried message by
message with a backoff (a full disk or a lost database pauses the ingest, it does not lose anything);
a worker killed mid-batch acknowledged nothing of it, so the broker redelivers it to the group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.core.threads import Worker
from agent.wire.mqtt import Inbound

log = logging.getLogger(__name__)

# per message: True stored (or refused) durably; False failed, retry with backoff; None busy (another worker of
# the group holds its device): offered again with the next batch, no backoff
BatchHandler = Callable[[Sequence[Inbound]], Sequence[bool | None]]
Acker = Callable[[int, int], None]  # (mid, qos)


@dataclass(frozen=True)
class FlowLimits:
    """Bounds of the receive path; memory in use is at most about ``window_bytes`` plus one packet."""

    window: int = 1024  # messages received but not yet acknowledged
    window_bytes: int = 64 << 20
    batch: int = 256  # messages per store transaction / round of fsyncs
    retry_min_s: float = 0.5
    retry_max_s: float = 30.0


@dataclass(frozen=True)
class Delivery:
    inbound: Inbound
    mid: int
    qos: int


@dataclass
class FlowStats:
    received: int = 0
    acked: int = 0
    batches: int = 0
    retries: int = 0
    deferred: int = 0  # messages handed back because another worker held their device
    paused_s: float = 0.0  # time the link spent not reading because the window was full
    peak_in_flight: int = 0


class Intake:
    """The MQTT link's receiver (see ``MqttLink.set_receiver``): offer, has_room, and a batching worker."""

    def __init__(self, handle_batch: BatchHandler, *, limits: FlowLimits | None = None,
                 name: str = "intake") -> None:
        self.limits = limits or FlowLimits()
        self._handle = handle_batch
        self._ack: Acker | None = None
        self._cond = threading.Condition()
        self._queue: deque[Delivery] = deque()
        self._in_flight = 0
        self._bytes = 0
        self._closed = False
        self.stats = FlowStats()
        self._worker = Worker(f"{name}-store", self._run)

    def start(self, ack: Acker) -> None:
        self._ack = ack
        self._worker.start()

    # -- called on the paho thread: never blocks for long ---------------------------------------
    def offer(self, inbound: Inbound, mid: int, qos: int) -> None:
        with self._cond:
            self._queue.append(Delivery(inbound, mid, qos))
            self._in_flight += 1
            self._bytes += len(inbound.payload)
            self.stats.received += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self._in_flight)
            self._cond.notify_all()

    def _room(self) -> bool:
        return self._closed or (self._in_flight < self.limits.window and self._bytes < self.limits.window_bytes)

    def has_room(self, timeout: float) -> bool:
        """True when the link may read more; waits up to ``timeout`` for the worker to free room."""
        with self._cond:
            if self._room():
                return True
            started = time.monotonic()
            ok = self._cond.wait_for(self._room, timeout)
            self.stats.paused_s += time.monotonic() - started
            return ok

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    # -- the worker -----------------------------------------------------------------------------
    def _take(self, stopping: threading.Event) -> list[Delivery]:
        with self._cond:
            while not self._queue and not stopping.is_set():
                self._cond.wait(0.2)
            n = min(len(self._queue), self.limits.batch)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self, stopping: threading.Event) -> None:
        retry: list[Delivery] = []
        delay = self.limits.retry_min_s
        while not stopping.is_set():
            batch = retry or self._take(stopping)
            if not batch:
                continue
            done = self._store(batch)
            retry = [d for d, ok in zip(batch, done, strict=True) if ok is False]
            self._finish([d for d, ok in zip(batch, done, strict=True) if ok])
            self._defer([d for d, ok in zip(batch, done, strict=True) if ok is None])
            if retry:
                self.stats.retries += 1
                log.warning("%d message(s) could not be stored; retrying in %.1f s (kept unacknowledged)",
                            len(retry), delay)
                stopping.wait(delay)
                delay = min(delay * 2, self.limits.retry_max_s)
            else:
                delay = self.limits.retry_min_s

    def _defer(self, busy: list[Delivery]) -> None:
        """Busy elsewhere: first in line for the next batch (still in flight, still unacknowledged)."""
        if busy:
            with self._cond:
                self._queue.extendleft(reversed(busy))
                self.stats.deferred += len(busy)

    def _store(self, batch: list[Delivery]) -> list[bool | None]:
        msgs = [d.inbound for d in batch]
        try:
            done = list(self._handle(msgs))
            if len(done) != len(batch):
                raise RuntimeError(f"batch handler answered for {len(done)} of {len(batch)} messages")
            self.stats.batches += 1
            return done
        except Exception:
            if len(batch) == 1:
                log.exception("storing the message on %s failed", batch[0].inbound.topic)
                return [False]
            log.exception("storing a batch of %d failed; trying its messages one by one", len(batch))
            return [self._store([d])[0] for d in batch]  # type: ignore[misc]

    def _finish(self, stored: list[Delivery]) -> None:
        """Acknowledge what is durable, then free its room (the link reads on)."""
        ack = self._ack
        for d in stored:
            if d.qos > 0 and ack is not None:
                ack(d.mid, d.qos)
        with self._cond:
            self._in_flight -= len(stored)
            self._bytes -= sum(len(d.inbound.payload) for d in stored)
            self.stats.acked += len(stored)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop after the batch in hand (its messages are acknowledged if stored); the rest are redelivered."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.stop(timeout=120)

"""One officer page's signed device session (live video, voice): what both kinds share.

The server picks the nonce, subscribes to the session topic (``sha256(nonce)[:24]``, so nothing is lost
before the reply), keeps what arrives before the device's signed reply (bounded) until the reply names the
device key, then verifies every message with the session's checker before the page sees it. The page's
socket is relayed by :class:`PageRelay`; :class:`PageKeepalive` is the dead-man switch (the device gets
``<kind>.keepalive`` only while the page's keepalives arrive), and ``<kind>.stop`` is sent when it closes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import WebSocket, WebSocketDisconnect

from agent.core.errors import AgentError, VerificationError
from agent.customs.console.deps import ConsoleServices
from agent.wire.live_frames import session_id_for
from agent.wire.mqtt import Inbound
from agent.wire.topics import DeviceTopics, check_segment

log = logging.getLogger(__name__)

FRAME_LEN = struct.Struct(">I")  # binary frames to the page: u32 BE header length | JSON header | data
C = TypeVar("C")  # the session's checker


@dataclass
class Checks:
    """What every officer-side checker of a session holds: the binding (device, session, nonce, device key),
    the freshness limits, the last sequence number that passed and the counts."""

    device: str
    session: str
    nonce: str
    key: ec.EllipticCurvePublicKey
    max_age_s: float = 15.0
    max_skew_s: float = 5.0
    last_seq: int = -1
    refused: int = 0
    passed: int = 0

    def _after_last(self, seq: int, what: str) -> None:
        """A sequence number at or below one already seen is a replay."""
        if seq <= self.last_seq:
            raise VerificationError(f"{what} {seq} replayed (already had up to {self.last_seq})")


@dataclass
class PageSession(Generic[C]):
    """MQTT in (link thread), verified items out (asyncio queue); subclasses verify and start."""

    kind: ClassVar[str] = "session"  # "live" or "voice": the command prefix and the log name
    queue_max: ClassVar[int] = 600
    early_max: ClassVar[int] = 64  # messages kept before the start reply names the key

    services: ConsoleServices
    site: str
    device: str
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[str | bytes] = field(init=False)
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))
    checker: C | None = None
    closed: bool = False
    stop_sent: bool = False
    _early: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.out = asyncio.Queue(maxsize=self.queue_max)

    @property
    def session(self) -> str:
        return session_id_for(self.nonce)

    @property
    def topic(self) -> str:
        return DeviceTopics(self.site, self.device).live(self.session)

    def _emit(self, item: str | bytes) -> None:
        self.loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: str | bytes) -> None:
        try:
            self.out.put_nowait(item)
        except asyncio.QueueFull:  # the page is not keeping up: it stays live, what does not fit is lost
            log.warning("%s %s: page queue full, dropping", self.kind, self.session)

    def on_message(self, msg: Inbound) -> None:
        """MQTT handler: verify, then forward; never raises."""
        if self.closed:
            return
        payload = bytes(msg.payload)
        with self._lock:
            if self.checker is None:  # before the start reply: keep (bounded) until we know the key
                if len(self._early) < self.early_max:
                    self._early.append(payload)
                return
            self._verify(payload)

    def _verify(self, payload: bytes) -> None:
        raise NotImplementedError

    def _arm(self, checker: C) -> None:
        """From now on every message is checked by ``checker``; what came early is checked first."""
        with self._lock:
            self.checker = checker
            early, self._early = self._early, []
            for payload in early:
                self._verify(payload)

    async def _subscribe(self) -> None:
        topic = self.topic
        codes = await asyncio.to_thread(self.services.link.subscribe_wait, topic, self.on_message, 0)
        if any(c >= 0x80 for c in codes):
            raise AgentError(f"the broker refused our subscription to {topic}")

    async def _unsubscribe(self) -> None:
        topic = self.topic
        if await asyncio.to_thread(self.services.link.unsubscribe, topic, self.on_message):
            log.info("%s %s: unsubscribed from %s", self.kind, self.session, topic)

    async def _request(self, params: dict[str, Any]) -> tuple[dict[str, Any], x509.Certificate]:
        """The signed ``<kind>.start`` with our nonce; the reply's certificate is checked by the client."""
        reply, leaf = await asyncio.to_thread(self.services.client.request_signed, self.site, self.device,
                                              f"{self.kind}.start", params, nonce=self.nonce, timeout=10.0)
        return reply, leaf

    def _session_key(self, reply: dict[str, Any], leaf: x509.Certificate) -> tuple[dict[str, Any],
                                                                                    ec.EllipticCurvePublicKey]:
        """The reply's result and the device key, once the reply names our session and the key is ECDSA."""
        result: dict[str, Any] = reply.get("result") or {}
        if result.get("session") != self.session:
            raise VerificationError(f"device answered with session {str(result.get('session'))[:80]!r}")
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise VerificationError("device certificate key is not ECDSA")
        return result, key

    async def keepalive(self) -> None:
        await asyncio.to_thread(self.services.client.send, self.site, self.device, f"{self.kind}.keepalive",
                                {"session": self.session})

    async def send_stop(self) -> None:
        """Tell the device to end the session (once)."""
        if self.stop_sent:
            return
        self.stop_sent = True
        try:
            await asyncio.to_thread(self.services.client.send, self.site, self.device, f"{self.kind}.stop",
                                    {"session": self.session})
        except AgentError as exc:  # the device's keepalive timeout ends it anyway
            log.warning("%s %s: stop not sent: %s", self.kind, self.session, exc)

    async def stop(self) -> None:
        """The page left: release the session's subscription (and with it this session), then end it."""
        if self.closed:
            return
        self.closed = True
        await self._unsubscribe()
        await self.send_stop()


@dataclass
class PageKeepalive:
    """The dead-man switch: the page must send within ``timeout`` s; the device is due one every ``every`` s."""

    every: float
    timeout: float
    last_page: float = field(default_factory=time.monotonic)
    next_send: float = 0.0

    def __post_init__(self) -> None:
        self.next_send = self.last_page + self.every

    def page_seen(self, now: float) -> None:
        self.last_page = now

    def page_gone(self, now: float) -> bool:
        return now - self.last_page > self.timeout

    def send_due(self, now: float) -> bool:
        if now < self.next_send:
            return False
        self.next_send = now + self.every
        return True

    async def beat(self, page: PageSession[Any], now: float) -> bool:
        """False once the page has gone quiet (logged); else True, after the device's keepalive when due."""
        if self.page_gone(now):
            log.info("%s %s: the page stopped sending keepalives; ending the session", page.kind, page.session)
            return False
        if self.send_due(now):
            await page.keepalive()
        return True


class PageRelay:
    """Waits (half a second at most) on both the page's socket and the session's verified output."""

    def __init__(self, receive: Callable[[], Awaitable[Any]], out: asyncio.Queue[str | bytes]) -> None:
        self._receive, self._out = receive, out
        self._recv: asyncio.Future[Any] | None = None
        self._get: asyncio.Future[str | bytes] | None = None

    async def wait(self) -> tuple[str | bytes | None, Any]:
        """(an item for the page or None, what the page sent or None); the socket's errors are raised."""
        if self._recv is None:
            self._recv = asyncio.ensure_future(self._receive())
        if self._get is None:
            self._get = asyncio.ensure_future(self._out.get())
        done, _ = await asyncio.wait({self._get, self._recv}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
        item: str | bytes | None = None
        received: Any = None
        if self._get in done:
            item, self._get = self._get.result(), None
        if self._recv in done:
            recv, self._recv = self._recv, None
            received = recv.result()
        return item, received

    def close(self) -> None:
        for fut in (self._recv, self._get):
            if fut is not None:
                fut.cancel()

    def __enter__(self) -> PageRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def serve_page(ws: WebSocket, site: str, device: str, make: Callable[[], PageSession[Any]],
                     start: Callable[[Any], Awaitable[dict[str, Any]]],
                     pump: Callable[[WebSocket, Any, float], Awaitable[None]]) -> None:
    """A page's socket: ids checked, the session started (its error shown), relayed by ``pump``, then stopped."""
    await ws.accept()
    try:
        check_segment(site, "site id")
        check_segment(device, "device id")
    except ValueError as exc:
        await ws.send_json({"t": "error", "message": str(exc)})
        await ws.close()
        return
    page = make()
    try:
        try:
            started = await start(page)
        except AgentError as exc:
            await ws.send_json({"t": "error", "message": str(exc)})
            return
        await ws.send_json(started)
        await pump(ws, page, float(started.get("keepalive_timeout_s") or 10.0) / 3)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await page.stop()

"""One officer watching a device live for a benchmark, the way the officer's console does it.

The console's viewer (``agent.customs.console.live``): subscribe to the session topic first (the officer
picks the nonce, so the topic is known), send a signed ``live.start`` with ``codec = "h264"`` at the
console's default size and rate, check the device-signed reply, then verify every fragment with the
console's own :class:`FragmentChecker` (signature, nonce, session, order, freshness, data hash) and send
a signed ``live.keepalive`` every third of the device's keepalive timeout. The browser is left out: it
costs the officer's machine, not the device.

The device may still be starting when :meth:`BenchViewer.start` is called: ``live.start`` is retried
until the device answers or ``start_timeout`` passes.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import AgentError, VerificationError
from agent.core.threads import Worker
from agent.customs.cmd_cmd import OfficerClient
from agent.customs.console.live import FragmentChecker
from agent.customs.keys import load_officer
from agent.wire.live_frames import session_id_for
from agent.wire.mqtt import Inbound, MqttConfig, MqttLink
from agent.wire.topics import DeviceTopics

CONSOLE_PARAMS = {"codec": "h264", "width": 1280, "height": 720, "fps": 15.0}  # the console's [live] defaults


@dataclass
class ViewerStats:
    started_after_s: float | None = None  # from start() to the device's signed reply
    first_fragment_after_s: float | None = None  # from start() to the first verified fragment
    fragments: int = 0  # verified and decodable
    waiting: int = 0  # verified, before the first keyframe
    refused: int = 0
    bytes: int = 0
    keepalives: int = 0
    error: str | None = None


class BenchViewer:
    """A live H.264 session kept open on one device from :meth:`start` until :meth:`stop`."""

    def __init__(self, mqtt: MqttConfig, officer_dir: Path, site: str, device: str, *, seconds: float,
                 start_timeout: float = 60.0) -> None:
        self.site, self.device, self.seconds, self.start_timeout = site, device, seconds, start_timeout
        self.link = MqttLink(mqtt, name="bench-viewer")
        self.officer = load_officer(officer_dir)
        self.stats = ViewerStats()
        self._lock = threading.Lock()
        self._checker: FragmentChecker | None = None
        self._early: list[bytes] = []
        self._t0 = 0.0
        self._first = threading.Event()
        self._worker: Worker | None = None

    @property
    def streaming(self) -> bool:
        """True once the first fragment has been verified."""
        return self._first.is_set()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self.link.start()
        if not self.link.wait_connected(30):
            raise AgentError(f"viewer could not connect: {self.link.last_error}")
        self._worker = Worker("bench-viewer", self._run)
        self._worker.start()

    def stop(self) -> ViewerStats:
        if self._worker is not None:
            self._worker.stop(timeout=30)
            self._worker = None
        self.link.close(offline=False)
        return self.stats

    def _on_message(self, msg: Inbound) -> None:  # paho thread: verify only (a signature check, no blocking)
        payload = bytes(msg.payload)
        with self._lock:
            if self._checker is None:
                if len(self._early) < 64:
                    self._early.append(payload)
                return
            self._verify(payload)

    def _verify(self, payload: bytes) -> None:
        assert self._checker is not None
        try:
            verdict, _h, _data = self._checker.check(payload, time.time_ns() // 1000)
        except VerificationError:
            self._checker.refuse()
            self.stats.refused += 1
            return
        self.stats.bytes += len(payload)
        if verdict == "wait":
            self.stats.waiting += 1
        elif verdict == "pass":
            self.stats.fragments += 1
            if not self._first.is_set():
                self.stats.first_fragment_after_s = time.monotonic() - self._t0
                self._first.set()

    def _run(self, stopping: threading.Event) -> None:
        client = OfficerClient(self.link, self.officer)
        deadline = time.monotonic() + self.start_timeout
        while not stopping.is_set():
            nonce = secrets.token_hex(16)
            session = session_id_for(nonce)
            topic = DeviceTopics(self.site, self.device).live(session)
            self.link.subscribe_wait(topic, self._on_message, 0)
            try:
                reply, leaf = client.request_signed(self.site, self.device, "live.start",
                                                    {**CONSOLE_PARAMS, "seconds": self.seconds}, nonce=nonce,
                                                    timeout=8.0)
                break
            except AgentError as exc:  # not connected yet (the command was lost), or a late reply
                with contextlib.suppress(AgentError):  # a session started late must not run beside the next one
                    client.send(self.site, self.device, "live.stop", {"session": session})
                self.link.unsubscribe(topic, self._on_message)
                if time.monotonic() > deadline:
                    self.stats.error = f"no live session: {exc}"
                    return
        else:
            return
        result: dict[str, Any] = reply.get("result") or {}
        key = leaf.public_key()
        if result.get("session") != session or not isinstance(key, ec.EllipticCurvePublicKey):
            self.stats.error = f"unexpected start reply: {result}"
            return
        self.stats.started_after_s = time.monotonic() - self._t0
        with self._lock:
            self._checker = FragmentChecker(self.device, session, nonce, key)
            early, self._early = self._early, []
            for payload in early:
                self._verify(payload)
        every = float(result.get("keepalive_timeout_s") or 10.0) / 3
        while not stopping.wait(every):
            try:
                client.send(self.site, self.device, "live.keepalive", {"session": session})
                self.stats.keepalives += 1
            except AgentError as exc:
                self.stats.error = f"keepalive: {exc}"
        with contextlib.suppress(AgentError):  # the device is gone: its keepalive timeout ends the session
            client.send(self.site, self.device, "live.stop", {"session": session})
        self.link.unsubscribe(topic, self._on_message)

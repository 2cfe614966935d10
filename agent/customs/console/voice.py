"""Voice back end: the site's microphone in the officer's page, every packet group verified before it is played.

The page opens ``/ws/voice/{site}/{device}``. The server picks the nonce, subscribes to the session topic,
sends a signed ``voice.start`` and checks the device-signed reply (certificate names the device and chains
to the device CA), exactly as for live video. Each audio message must then carry a valid signature by that
device's key, this nonce and session, a sequence number above every one seen, a recent capture time, a
shape within the wire limits (:mod:`agent.wire.audio_frames`) and no more audio than real time allows (a
flood is refused, not queued). Only then are its Opus packets forwarded to the page, which decodes them with
WebCodecs. Keepalives and the stop on close work as for live video: a closed page ends the session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from agent.core.errors import VerificationError
from agent.customs.console.badges import chain_line
from agent.customs.console.deps import Services
from agent.customs.console.page_session import FRAME_LEN, Checks, PageKeepalive, PageRelay, PageSession, serve_page
from agent.wire.audio_frames import (
    FRAME_MS,
    MAX_MESSAGE,
    TALK_TYP,
    Pacing,
    audio_header,
    check_fresh,
    pack_audio,
    split_packets,
    verify_audio,
)
from agent.wire.topics import DeviceTopics

log = logging.getLogger(__name__)

PAGE_KEEPALIVE_TIMEOUT_S = 10.0
END_WAIT_S = 10.0  # after a stop, how long the page's socket waits for the device's end message


@dataclass
class AudioChecker(Checks):
    """The officer-side checks of one voice session (the console and the benchmark use it)."""

    burst_s: float = 2.0  # audio may arrive this much faster than real time (network bunching), no more
    pacing: Pacing | None = None

    def check(self, payload: bytes, now_us: int, mono_us: int) -> tuple[str, dict[str, Any], list[bytes]]:
        """("pass"|"end", header, packets); VerificationError says why a message is refused."""
        try:
            v = verify_audio(payload, self.key, device=self.device, session=self.session, nonce=self.nonce)
        except VerificationError:
            self.refused += 1
            raise
        h = v.header
        if v.end:
            return "end", h, []
        try:
            self._order_fresh_rate(h, len(v.packets), now_us, mono_us)
        except VerificationError:
            self.refused += 1
            raise
        self.passed += 1
        return "pass", h, v.packets

    def _order_fresh_rate(self, h: dict[str, Any], count: int, now_us: int, mono_us: int) -> None:
        self._after_last(h["seq"], "audio")
        check_fresh(h["capture_wall_us"], now_us, self.max_age_s, self.max_skew_s)
        if self.pacing is None:
            self.pacing = Pacing(self.burst_s)
        self.pacing.admit(count * h["frame_ms"] * 1000, mono_us)
        self.last_seq = h["seq"]


@dataclass
class VoiceListener(PageSession[AudioChecker]):
    """One page's voice session: MQTT in (link thread), verified packet groups out (asyncio)."""

    kind: ClassVar[str] = "voice"
    queue_max: ClassVar[int] = 200
    early_max: ClassVar[int] = 32
    talk_seq: int = 0
    talk_refused: int = 0
    talk_pacing: Pacing = field(default_factory=lambda: Pacing(1.0))

    def _verify(self, payload: bytes) -> None:
        assert self.checker is not None
        try:
            verdict, h, packets = self.checker.check(payload, time.time_ns() // 1000, time.monotonic_ns() // 1000)
        except (VerificationError, ValueError) as exc:
            log.warning("voice %s/%s: audio refused: %s", self.device, self.session, exc)
            self._emit(json.dumps({"t": "refused", "reason": str(exc)[:300], "refused": self.checker.refused}))
            return
        if verdict == "end":
            raw = h.get("sealed")
            sealed: list[Any] = raw if isinstance(raw, list) else []
            self._emit(json.dumps({"t": "end", "reason": str(h.get("reason"))[:100], "sealed": sealed[:1000]}))
            return
        meta = {"t": "audio", "seq": h["seq"], "capture_wall_us": h["capture_wall_us"], "frame_ms": h["frame_ms"],
                "packets": [len(p) for p in packets], "bytes": len(payload)}
        head = json.dumps(meta).encode()
        self._emit(FRAME_LEN.pack(len(head)) + head + b"".join(packets))

    async def start(self, seconds: float | None) -> dict[str, Any]:
        """Subscribe, ask the device, check its signed reply; returns what the page shows."""
        s = self.services
        await self._subscribe()
        reply, leaf = await self._request({} if seconds is None else {"seconds": seconds})
        result, key = self._session_key(reply, leaf)
        chain = chain_line(leaf, self.device, s.device_cas is not None)
        live = s.cfg.live
        self._arm(AudioChecker(self.device, self.session, self.nonce, key, max_age_s=live.max_age_s,
                               max_skew_s=live.max_skew_s))
        return {"t": "voice_started", "session": self.session, "device": self.device, "chain": chain,
                "frame_ms": result.get("frame_ms"), "bitrate_kbps": result.get("bitrate_kbps"),
                "seconds": result.get("seconds"), "keepalive_timeout_s": result.get("keepalive_timeout_s")}

    def talk(self, buf: bytes) -> str | None:
        """The officer's voice from the page: checked against the wire limits, signed with the officer's key
        for this session, published on the device's talk topic. Returns why it was refused, else None."""
        try:
            header, packets = self._talk_header(buf)
        except (VerificationError, ValueError) as exc:
            self.talk_refused += 1
            return str(exc)[:300]
        msg = pack_audio(header, _OfficerSigner(self.services.client.officer.private_key), packets)
        self.talk_seq += 1
        self.services.link.publish(DeviceTopics(self.site, self.device).talk(self.session), msg, qos=0)
        return None

    def _talk_header(self, buf: bytes) -> tuple[dict[str, Any], list[bytes]]:
        if len(buf) > MAX_MESSAGE or len(buf) < 4:
            raise VerificationError("talk message size out of bounds")
        (hlen,) = FRAME_LEN.unpack_from(buf)
        if hlen > 1024 or 4 + hlen > len(buf):
            raise VerificationError("talk header length out of bounds")
        meta = json.loads(buf[4:4 + hlen])
        if not isinstance(meta, dict) or meta.get("frame_ms") not in FRAME_MS:
            raise VerificationError("talk header must name frame_ms")
        wall, sizes = meta.get("capture_wall_us"), meta.get("packets")
        if not isinstance(wall, int) or not isinstance(sizes, list):
            raise VerificationError("talk header must carry capture_wall_us and packets")
        check_fresh(wall, time.time_ns() // 1000, 5.0, 2.0)
        data = buf[4 + hlen:]
        base = {"device": self.device, "site": self.site, "session": self.session, "nonce": self.nonce,
                "officer": self.services.client.officer.officer_id, "key_id": self.services.client.officer.key_id}
        packets, pos = [], 0
        for n in sizes[:51]:
            if not isinstance(n, int) or n < 1:
                raise VerificationError("talk packet sizes must be positive integers")
            packets.append(data[pos:pos + n])
            pos += n
        header = audio_header(base, packets, seq=self.talk_seq, frame_ms=meta["frame_ms"], bitrate_kbps=20,
                              capture_wall_us=wall, capture_mono_us=time.monotonic_ns() // 1000, direction="officer")
        header["typ"] = TALK_TYP
        split_packets(header, data)  # the same limits the device applies: never sign what it would refuse
        self.talk_pacing.admit(len(packets) * meta["frame_ms"] * 1000, time.monotonic_ns() // 1000)
        return header, packets


class _OfficerSigner:
    """The officer's key as the EVLF framing's signer (the console signs the officer's voice for the officer)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


router = APIRouter(tags=["voice"])


@router.websocket("/ws/voice/{site}/{device}")
async def voice_socket(ws: WebSocket, site: str, device: str, services: Services) -> None:
    await serve_page(ws, site, device, lambda: VoiceListener(services, site, device, asyncio.get_running_loop()),
                     lambda listener: listener.start(None), _pump)


async def _pump(ws: WebSocket, listener: VoiceListener, keepalive_every: float) -> None:
    """Forward verified audio; relay the page's keepalives to the device while they arrive. When the page asks
    to stop, the device is told at once and its signed end message (naming the sealed audio) is still forwarded."""
    keep = PageKeepalive(keepalive_every, PAGE_KEEPALIVE_TIMEOUT_S)
    stop_by: float | None = None  # after the page's stop: wait this long for the device's end message
    with PageRelay(ws.receive, listener.out) as relay:
        while True:
            item, msg = await relay.wait()
            if item is not None:
                await (ws.send_bytes(item) if isinstance(item, bytes) else ws.send_text(item))
                if isinstance(item, str) and item.startswith('{"t": "end"'):
                    return
            now = time.monotonic()
            if msg is not None:
                if msg.get("type") == "websocket.disconnect":
                    raise WebSocketDisconnect(msg.get("code", 1000))
                if msg.get("bytes") is not None:
                    if stop_by is None and (why := listener.talk(msg["bytes"])) is not None:
                        await ws.send_text(json.dumps({"t": "talk_refused", "reason": why,
                                                       "refused": listener.talk_refused}))
                elif '"stop"' in (msg.get("text") or "") and stop_by is None:
                    stop_by = now + END_WAIT_S
                    await listener.send_stop()
                else:
                    keep.page_seen(now)
            if stop_by is not None:
                if now > stop_by:
                    return
                continue
            if not await keep.beat(listener, now):
                return

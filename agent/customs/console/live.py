"""Live page back end: one signed live session per open page, every fragment verified before the browser sees it.

The page opens ``/ws/live/{site}/{device}``. The server picks the nonce, subscribes to the session topic,
sends a signed ``live.start`` (codec h264) and checks the device-signed reply (certificate names the
device and chains to the device CA). Each fragment must then carry a valid signature by that device's
key, this nonce and session, a sequence number above every one seen (a replay is refused), a capture
time that is recent (not recorded footage), a sane shape, and bytes matching the signed hash. Only then
are its bytes forwarded, with the list of what was checked; a refused fragment is reported with the
reason and the stream waits for the next keyframe so nothing undecodable is shown.

The page sends a keepalive every few seconds; the server forwards ``live.keepalive`` to the device only
while the page's keepalives arrive (a dead-man switch: a closed or frozen page ends the stream), and
sends ``live.stop`` when the socket closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi import APIRouter, WebSocket

from agent.core.errors import VerificationError
from agent.core.vocab import ZOOM_MAX
from agent.customs.cmd_cmd import CommandRefused
from agent.customs.console.badges import chain_line, signature_scheme
from agent.customs.console.deps import Services
from agent.customs.console.page_session import FRAME_LEN, Checks, PageKeepalive, PageRelay, PageSession, serve_page
from agent.wire.live_frames import FRAGMENT_TYP, verify_message

log = logging.getLogger(__name__)

PAGE_KEEPALIVE_TIMEOUT_S = 10.0
STREAM_STALL_S = 10.0  # no fragment from the device this long: the page is told (never a silent frozen picture)


@dataclass(frozen=True)
class Checked:
    """What the checks found for one fragment that passed, each in words an officer can repeat."""

    signature: str
    binding: str
    data: str
    order: str
    fresh: str | None  # None for an init fragment (it carries no capture time)

    def lines(self) -> list[str]:
        return [x for x in (self.signature, self.binding, self.data, self.order, self.fresh) if x is not None]


@dataclass
class FragmentChecker(Checks):
    """The officer-side checks of one session, in one place (used by the console and the benchmark)."""

    have_init: bool = False
    need_keyframe: bool = True
    codec: str = "h264"  # "jpeg": the fallback for devices without a second encoder
    waiting: int = 0  # verified but not decodable yet (before the next keyframe)
    checked: Checked | None = None  # what the last fragment that passed was checked for

    def check(self, payload: bytes, now_us: int) -> tuple[str, dict[str, Any], bytes]:
        """("pass"|"wait"|"end", header, data); VerificationError says why a message is refused."""
        try:
            frame = verify_message(payload, self.key, device=self.device, session=self.session, nonce=self.nonce)
        except ValueError as exc:  # JSON or key errors inside a well-signed frame
            raise VerificationError(f"malformed live message: {exc}") from None
        h = frame.header
        if frame.end:
            return "end", h, b""
        if self.codec == "jpeg":
            return self._check_jpeg(h, frame.data, now_us)
        if h.get("typ") != FRAGMENT_TYP:
            raise VerificationError("a JPEG frame in an H.264 session")
        seq = h["seq"]
        self._after_last(seq, "fragment")
        previous = self.last_seq
        if h["kind"] == "init":
            self.last_seq, self.have_init, self.need_keyframe = seq, True, True
            self.checked = self._checked(h, frame.data, "data_sha256", previous, None)
            return "pass", h, frame.data
        fresh = self._fresh(now_us, h["capture_end_wall_us"])
        self.last_seq = seq
        if not self.have_init or (self.need_keyframe and not h.get("keyframe")):
            self.waiting += 1
            return "wait", h, b""
        self.need_keyframe = False
        self.checked = self._checked(h, frame.data, "data_sha256", previous, fresh)
        return "pass", h, frame.data

    def _check_jpeg(self, h: dict[str, Any], data: bytes, now_us: int) -> tuple[str, dict[str, Any], bytes]:
        seq, wall = h.get("seq"), h.get("capture_wall_us")
        if h.get("typ") == FRAGMENT_TYP or not isinstance(seq, int) or not isinstance(wall, int):
            raise VerificationError("not a JPEG live frame")
        self._after_last(seq, "frame")
        fresh = self._fresh(now_us, wall)
        self.checked = self._checked(h, data, "jpeg_sha256", self.last_seq, fresh)
        self.last_seq = seq
        h = {**h, "kind": "jpeg", "capture_start_wall_us": wall, "capture_end_wall_us": wall}
        return "pass", h, data

    def _fresh(self, now_us: int, wall_us: int) -> str:
        age_s = (now_us - wall_us) / 1e6
        if age_s > self.max_age_s:
            raise VerificationError(f"fragment captured {age_s:.1f} s ago: not live")
        if age_s < -self.max_skew_s:
            raise VerificationError(f"fragment capture time is {-age_s:.1f} s in the future")
        return f"captured {age_s:.2f} s ago (live: at most {self.max_age_s:g} s old, {self.max_skew_s:g} s ahead)"

    def _checked(self, h: dict[str, Any], data: bytes, hash_field: str, previous: int, fresh: str | None) -> Checked:
        """The lines for a fragment ``verify_message`` and these checks passed, from the values they compared."""
        return Checked(
            signature=f"{signature_scheme(self.key)} signature valid for {self.device}'s certificate key",
            binding=f"device {h.get('device')}, session {str(h.get('session'))[:8]}…, "
                    f"nonce {str(h.get('nonce'))[:8]}… (ours)",
            data=f"{len(data)} bytes match the signed SHA-256 {str(h.get(hash_field))[:12]}…",
            order=f"seq {h.get('seq')} in order (after {previous})" if previous >= 0 else f"seq {h.get('seq')} first",
            fresh=fresh)

    def refuse(self) -> None:
        """After a refused fragment the next ones reference a frame we do not have: wait for a keyframe."""
        self.refused += 1
        self.need_keyframe = True


def checks_of(h: dict[str, Any], now_us: int, chain: str, checked: Checked) -> dict[str, Any]:
    """What the badge shows: the lines of the checks that passed (``chain``: what the start reply's certificate
    check established), then what the device signed about GPS and time."""
    gps: dict[str, Any] = h["gps"] if isinstance(h.get("gps"), dict) else {}
    fix = gps if gps.get("fix") not in (None, "none") and isinstance(gps.get("lat"), float) else None
    time_q: dict[str, Any] = h["time"] if isinstance(h.get("time"), dict) else {}
    out: dict[str, Any] = {
        "device": h.get("device"), "chain": chain, "signature": checked.signature, "lines": [chain, *checked.lines()],
        "nonce": f"{str(h.get('nonce'))[:8]}… (ours)", "seq": h.get("seq"), "kind": h.get("kind")}
    if h.get("kind") in ("media", "jpeg"):
        out["capture_start_us"] = h["capture_start_wall_us"]
        out["age_ms"] = round((now_us - h["capture_end_wall_us"]) / 1000)
        out["gps"] = (f"{fix['lat']:.5f},{fix['lon']:.5f} ({fix.get('fix')})" if fix is not None
                      else f"no fix ({gps.get('status') or 'unknown'})")
        out["time_source"] = (f"{time_q.get('source')} synced" if time_q.get("synced")
                              else f"NOT synced (source: {time_q.get('source')})")
        out["doubts"] = [*(["GPS is SIMULATED (no real receiver)"] if gps.get("talker") == "sim" else []),
                         *([] if time_q.get("synced") else ["clock NOT synchronised"])]
    return out


@dataclass
class LiveViewer(PageSession[FragmentChecker]):
    """One page's live session: MQTT in (link thread), verified binary frames out (asyncio)."""

    kind: ClassVar[str] = "live"
    chain_checked: bool = False
    chain: str = "device certificate not checked yet"
    bytes_in: int = 0

    def _verify(self, payload: bytes) -> None:
        assert self.checker is not None
        now_us = time.time_ns() // 1000
        self.bytes_in += len(payload)
        try:
            verdict, h, data = self.checker.check(payload, now_us)
        except VerificationError as exc:
            self.checker.refuse()
            log.warning("live %s/%s: fragment refused: %s", self.device, self.session, exc)
            self._emit(json.dumps({"t": "refused", "reason": str(exc), "refused": self.checker.refused}))
            return
        if verdict == "end":
            self._emit(json.dumps({"t": "end", "reason": _str(h.get("reason")), "sealed": h.get("sealed")}))
            return
        if verdict == "wait":
            self._emit(json.dumps({"t": "wait", "seq": h["seq"]}))
            return
        checked = self.checker.checked
        assert checked is not None  # every "pass" records what it checked
        meta = {"t": h["kind"], "seq": h["seq"], "codec": h.get("codec") or self.checker.codec,
                "width": h.get("width"), "capture_wall_us": h.get("capture_end_wall_us"),
                "height": h.get("height"), "keyframe": h.get("keyframe"), "frames": h.get("frames"),
                "bitrate_kbps": h.get("bitrate_kbps"), "checks": checks_of(h, now_us, self.chain, checked),
                "bytes": len(payload), "view": view_of(h.get("view"))}
        head = json.dumps(meta).encode()
        self._emit(FRAME_LEN.pack(len(head)) + head + data)

    async def start(self, params: dict[str, Any]) -> dict[str, Any]:
        """Subscribe, ask the device, check its signed reply; returns what the page shows at the top."""
        s = self.services
        await self._subscribe()
        codec = "h264"
        try:
            reply, leaf = await self._request(params)
        except CommandRefused as exc:
            if exc.code != "bad_args" or "codec" not in str(exc):
                raise
            # a device without a second encoder (or older firmware): its signed JPEG frames instead
            log.info("live %s: %s; falling back to JPEG", self.device, exc)
            codec = "jpeg"
            await self._unsubscribe()
            self.nonce = secrets.token_hex(16)  # a fresh request, a fresh session
            await self._subscribe()
            reply, leaf = await self._request({k: v for k, v in params.items() if k != "codec"})
        result, key = self._session_key(reply, leaf)
        self.chain_checked = s.device_cas is not None
        self.chain = chain_line(leaf, self.device, self.chain_checked)
        live = s.cfg.live
        self._arm(FragmentChecker(self.device, self.session, self.nonce, key, max_age_s=live.max_age_s,
                                  max_skew_s=live.max_skew_s, codec=codec))
        return {"t": "started", "session": self.session, "device": self.device, "site": self.site,
                "officer": s.client.officer.officer_id, "subject": leaf.subject.rfc4514_string(),
                "chain_checked": self.chain_checked, "codec": codec, "width": result.get("width"),
                "height": result.get("height"),
                "fps": result.get("fps"), "seconds": result.get("seconds"),
                "keepalive_timeout_s": result.get("keepalive_timeout_s")}


def view_of(value: Any) -> dict[str, float] | None:
    """The digital zoom a fragment's signed header says it shows, passed to the page only as sane numbers (a
    region inside the full view, factor 1 to ZOOM_MAX); anything else is shown as no zoom."""
    if not isinstance(value, dict):
        return None
    try:
        x, y, w, h, factor = (float(value[k]) for k in ("x", "y", "w", "h", "factor"))
    except (KeyError, TypeError, ValueError):
        return None
    if not (all(math.isfinite(v) for v in (x, y, w, h, factor)) and min(x, y) >= 0 and min(w, h) > 0
            and x + w <= 1.000001 and y + h <= 1.000001 and 1 <= factor <= ZOOM_MAX + 1e-6):
        return None
    return {"x": x, "y": y, "w": w, "h": h, "factor": factor}


def _str(v: Any) -> str | None:
    return None if v is None else str(v)[:200]


router = APIRouter(tags=["live"])


@router.websocket("/ws/live/{site}/{device}")
async def live_socket(ws: WebSocket, site: str, device: str, services: Services) -> None:
    live = services.cfg.live
    params = {"codec": "h264", "width": live.width, "height": live.height, "fps": live.fps,
              "seconds": live.seconds}
    viewer = LiveViewer(services, site, device, asyncio.get_running_loop())
    remove: list[Callable[[], None]] = []

    def make() -> LiveViewer:  # only once the ids passed their checks
        remove.append(services.fleet.add_listener(lambda ev: _alert_for(viewer, ev)))
        return viewer

    try:
        await serve_page(ws, site, device, make, lambda v: v.start(params), _pump)
    finally:
        for r in remove:
            r()


def _alert_for(viewer: LiveViewer, event: dict[str, Any]) -> None:
    dev = event.get("device") or {}
    if event.get("alert") and dev.get("device") == viewer.device and dev.get("site") == viewer.site:
        viewer._emit(json.dumps({"t": "alert", "alert": event["alert"]}))


async def _pump(ws: WebSocket, viewer: LiveViewer, keepalive_every: float) -> None:
    """Forward verified fragments; relay the page's keepalives to the device while they arrive."""
    keep = PageKeepalive(keepalive_every, PAGE_KEEPALIVE_TIMEOUT_S)
    last_fragment = time.monotonic()
    stalled = False
    with PageRelay(ws.receive_text, viewer.out) as relay:
        while True:
            item, text = await relay.wait()
            if item is not None:
                if isinstance(item, bytes):
                    last_fragment = time.monotonic()
                    if stalled:
                        stalled = False
                        await ws.send_text(json.dumps({"t": "resumed"}))
                await (ws.send_bytes(item) if isinstance(item, bytes) else ws.send_text(item))
            if not stalled and time.monotonic() - last_fragment > STREAM_STALL_S:
                stalled = True
                log.warning("live %s: no fragment from the device for %.0f s", viewer.session, STREAM_STALL_S)
                await ws.send_text(json.dumps({
                    "t": "stalled", "for_s": STREAM_STALL_S,
                    "message": f"no video from the device for {STREAM_STALL_S:g} s: its streamer or link has "
                               "stopped; the picture shown is NOT live"}))
            if text is not None:
                if '"stop"' in text:
                    return
                keep.page_seen(time.monotonic())
            if not await keep.beat(viewer, time.monotonic()):
                return

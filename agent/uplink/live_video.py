"""HD live video for officers: one shared H.264 encoder per size/rate, signed fMP4 fragments per session.

Each officer's session has its own nonce, so its messages are signed for it alone, but sessions that
asked for the same size and rate share one encoder (two officers cost one encode). A session that joins
gets the init segment at once and a forced keyframe, and is fed from the first fragment that starts with
it. Fragments go out at QoS 1: the broker's PUBACKs tell how far the uplink lags, the bitrate steps down
a rung when it lags and back up when it has kept up for a while, and a session that lags by seconds
skips fragments and resynchronises at a keyframe instead of queueing without bound.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.core.clock import Clock
from agent.core.model import Frame, Moment
from agent.core.view import ViewRegion
from agent.uplink.settings_commands import LiveConfig
from agent.video.live_encoder import EncodedFrame, LiveEncoder, fit_size
from agent.wire.live_frames import FRAGMENT_TYP, pack_message
from agent.wire.replies import DeviceSigner

log = logging.getLogger(__name__)

LAG_STEP_DOWN_S = 0.8  # oldest unacknowledged fragment older than this: a rung down
LAG_SKIP_S = 3.0  # older than this: skip fragments for that session, resync at a keyframe
STEP_UP_AFTER_S = 8.0  # this long without lag: a rung up


class RateLadder:
    """Bitrate rungs from the configured target down to the floor; one step at a time."""

    def __init__(self, top_kbps: int, min_kbps: int) -> None:
        rungs, k = [], float(top_kbps)
        while k > min_kbps:
            rungs.append(int(k))
            k *= 0.65
        self.rungs = [*rungs, min_kbps] if rungs else [min_kbps]
        self.level = 0
        self._last_change = float("-inf")  # times come from observe(): the caller's clock
        self._last_lag = float("-inf")

    @property
    def kbps(self) -> int:
        return self.rungs[self.level]

    def observe(self, lag_s: float, now: float) -> int | None:
        """The new bitrate when it changes, else None."""
        if lag_s > LAG_STEP_DOWN_S:
            self._last_lag = now
            if now - self._last_change >= 2.0 and self.level < len(self.rungs) - 1:
                self.level += 1
                self._last_change = now
                return self.kbps
        elif self.level > 0 and now - self._last_lag >= STEP_UP_AFTER_S and now - self._last_change >= 4.0:
            self.level -= 1
            self._last_change = now
            return self.kbps
        return None


@dataclass
class VideoState:
    """Per-session H.264 state (kept on the LiveSession)."""

    init_sent: bool = False
    synced: bool = False  # has received a keyframe fragment: later fragments decode
    skipped: int = 0
    inflight: dict[int, int] = field(default_factory=dict)  # seq -> sent (monotonic ns), until PUBACK
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lag_s(self, now_ns: int) -> float:
        with self.lock:
            oldest = min(self.inflight.values(), default=now_ns)
        return (now_ns - oldest) / 1e9

    def acked(self, seq: int) -> None:
        with self.lock:
            self.inflight.pop(seq, None)


class VideoChannel:
    """One encoder for every session asking for the same (box, fps); groups frames into fragments."""

    def __init__(self, cfg: LiveConfig, box: tuple[int, int], fps: float, bitrate_kbps: int) -> None:
        self.cfg, self.box, self.fps = cfg, box, fps
        self.ladder = RateLadder(bitrate_kbps, min(cfg.min_bitrate_kbps, bitrate_kbps))
        self.encoder: LiveEncoder | None = None
        self.sessions: dict[str, Any] = {}  # session id -> LiveSession
        self.group: list[EncodedFrame] = []
        self.next_due_mono = 0
        self._group_frames = max(1, round(cfg.fragment_ms / 1000 * fps))
        # digital zoom: capture wall time (us) -> (the frame's view, since when that view is shown)
        self._views: collections.OrderedDict[int, tuple[ViewRegion | None, int]] = collections.OrderedDict()
        self._view: tuple[ViewRegion | None, int] = (None, 0)

    def view_at(self, wall_us: int) -> dict[str, Any] | None:
        """What a fragment header says of the zoom at a frame: the region and since when it is shown."""
        view, since = self._views.get(wall_us, self._view)
        return None if view is None else {**view.as_record(), "since_wall_us": since}

    def _note_view(self, frame: Frame) -> None:
        shown = self._view[0]
        if (frame.view is None) != (shown is None) or (frame.view is not None and not frame.view.same(shown)):
            self._view = (frame.view, frame.wall_ns // 1000)
        self._views[frame.wall_ns // 1000] = self._view
        while len(self._views) > 256:
            self._views.popitem(last=False)

    def attach(self, session: Any) -> None:
        self.sessions[session.session] = session
        if self.encoder is not None:
            self.encoder.request_keyframe()  # the new viewer starts within one frame, not one GOP

    def due(self, frame: Frame) -> bool:
        if frame.mono_ns + int(2.5e8 / self.fps) < self.next_due_mono:
            return False
        period = int(1e9 / self.fps)
        self.next_due_mono = max(self.next_due_mono + period, frame.mono_ns + period // 2)
        return True

    def encode(self, frame: Frame) -> list[list[EncodedFrame]]:
        """Encode one frame; returns the fragments (lists of frames) completed by it."""
        if self.encoder is None:
            w, h = fit_size(frame.width, frame.height, *self.box)
            self.encoder = LiveEncoder(w, h, self.fps, self.ladder.kbps, gop_s=self.cfg.gop_s,
                                       preset=self.cfg.encoder_preset)
            log.info("live H.264 encoder %dx%d@%g %d kbit/s for %dx%d camera frames", w, h, self.fps,
                     self.ladder.kbps, frame.width, frame.height)
        enc = self.encoder
        self._note_view(frame)
        done: list[list[EncodedFrame]] = []
        for ef in enc.encode(frame.image, frame.wall_ns, frame.mono_ns, frame.fmt):  # scaled by the encoder
            if ef.keyframe and self.group:
                done.append(self.group)
                self.group = []
            self.group.append(ef)
            if len(self.group) >= self._group_frames:
                done.append(self.group)
                self.group = []
        return done

    def adapt(self, now_ns: int) -> None:
        """Step the bitrate by the worst lag among this channel's sessions."""
        lag = max((s.video.lag_s(now_ns) for s in self.sessions.values()), default=0.0)
        kbps = self.ladder.observe(lag, now_ns / 1e9)
        if kbps is not None and self.encoder is not None:
            log.info("live H.264 %dx%d: uplink lag %.1f s, bitrate now %d kbit/s", self.encoder.width,
                     self.encoder.height, lag, kbps)
            self.encoder.set_bitrate(kbps)

    def close(self) -> None:
        if self.encoder is not None:
            try:
                self.encoder.close()
            except Exception:  # the stream is over either way
                log.exception("live encoder close failed")
            self.encoder = None


def init_header(base: dict[str, Any], enc: LiveEncoder, data: bytes) -> dict[str, Any]:
    return {**base, "typ": FRAGMENT_TYP, "kind": "init", "codec": enc.codec, "width": enc.width,
            "height": enc.height, "data_sha256": hashlib.sha256(data).hexdigest()}


def media_header(base: dict[str, Any], enc: LiveEncoder, group: list[EncodedFrame], data: bytes,
                 moment: Moment, fps: float, view: dict[str, Any] | None = None) -> dict[str, Any]:
    """``view``: the digital zoom at the fragment's last frame (None: the full view)."""
    return {**base, "view": view, "typ": FRAGMENT_TYP, "kind": "media", "codec": enc.codec, "width": enc.width,
            "height": enc.height, "fps": fps, "bitrate_kbps": enc.bitrate_kbps, "keyframe": group[0].keyframe,
            "capture_start_wall_us": group[0].wall_us, "capture_end_wall_us": group[-1].wall_us,
            "capture_mono_us": group[0].mono_us, "frame_count": len(group),
            "frames": [[f.pts_us, f.wall_us] for f in group],
            "gps": moment.gps.as_record(), "time": moment.time.as_record(),
            "data_sha256": hashlib.sha256(data).hexdigest()}


class VideoSender:
    """Signs each completed fragment for each session of a channel and publishes it at QoS 1."""

    def __init__(self, signer: DeviceSigner, publish: Callable[..., None], clock: Clock, *, device_id: str,
                 site_id: str) -> None:
        self.signer, self.publish, self.clock = signer, publish, clock
        self.device_id, self.site_id = device_id, site_id

    def stream(self, ch: VideoChannel, frame: Frame, moment: Moment, now: int) -> None:
        """Encode once for the channel, then sign and send every completed fragment to each of its sessions."""
        try:
            groups = ch.encode(frame)
        except Exception:  # an encoder failure ends nobody's session; the next frame tries again
            log.exception("live H.264 encode failed")
            return
        enc = ch.encoder
        if enc is None:
            return
        for group in groups:
            data = b"".join(f.data for f in group)
            for s in list(ch.sessions.values()):
                v = s.video
                if not v.init_sent and enc.init is not None:
                    self.send(s, init_header(self.base(s), enc, enc.init), enc.init)
                    v.init_sent = True
                if not v.init_sent:
                    continue
                lagging = v.lag_s(now) > LAG_SKIP_S
                if lagging or (not v.synced and not group[0].keyframe):
                    if lagging and v.synced:
                        log.warning("live session %s: uplink %.1f s behind, skipping to the next keyframe",
                                    s.session, v.lag_s(now))
                        v.synced = False
                        enc.request_keyframe()
                    v.skipped += 1
                    continue
                v.synced = True
                self.send(s, media_header(self.base(s), enc, group, data, moment, ch.fps,
                                          ch.view_at(group[-1].wall_us)), data)
        ch.adapt(now)

    def base(self, s: Any) -> dict[str, Any]:
        return {"device": self.device_id, "site": self.site_id, "session": s.session, "nonce": s.nonce,
                "officer": s.officer, "seq": s.seq}

    def send(self, s: Any, header: dict[str, Any], data: bytes) -> None:
        """Sign, remember the hashes for the sealed session record, publish; the PUBACK clears the lag."""
        msg = pack_message(header, self.signer, data)
        seq = s.seq
        s.hashes.append({"seq": seq, "kind": header["kind"], "data_sha256": header["data_sha256"],
                         "capture_wall_us": header.get("capture_start_wall_us"),
                         "message_sha256": hashlib.sha256(msg).hexdigest()})
        s.seq += 1
        v: VideoState = s.video
        with v.lock:
            v.inflight[seq] = self.clock.mono_ns()
        try:
            self.publish(s.topic, msg, 1, on_done=lambda _r, seq=seq: v.acked(seq))
        except Exception:  # a lost fragment must not end the session
            v.acked(seq)
            log.exception("live fragment publish failed on %s", s.topic)

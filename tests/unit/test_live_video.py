"""H.264 live sessions step by step: signed fMP4 fragments, one encoder for two viewers, aspect, bitrate steps."""

from __future__ import annotations

import io
import secrets
from typing import Any

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.clock import ManualClock
from agent.core.errors import VerificationError
from agent.core.model import Frame
from agent.signing.keys import DeviceIdentity
from agent.uplink.command_controller import LiveSessionArgs, LiveStartArgs
from agent.uplink.live import LiveManager
from agent.uplink.live_video import RateLadder
from agent.uplink.settings_commands import LiveConfig
from agent.video.live_encoder import fit_size
from agent.wire.commands import CommandRequest
from agent.wire.live_frames import pack_message, unpack_message, verify_message
from tests.support.helpers import moment

DEVICE, SITE = "test-device", "test-site"


class Sent:
    """Publisher that acknowledges at once unless told the uplink is stuck."""

    def __init__(self) -> None:
        self.msgs: list[tuple[str, bytes, int]] = []
        self.stuck = False

    def __call__(self, topic: str, payload: bytes, qos: int, on_done: Any = None) -> None:
        self.msgs.append((topic, payload, qos))
        if on_done is not None and not self.stuck:
            on_done(None)


class NoFrames:
    def subscribe(self, name: str, maxsize: int = 4) -> Any:
        raise AssertionError("step() tests never subscribe")

    def unsubscribe(self, sub: Any) -> None:
        pass


def request(nonce: str, key_id: str = "a" * 64) -> CommandRequest:
    return CommandRequest("live.start", {}, DEVICE, "officer-alice", key_id, 0, 1, nonce, {"body": {}})


def manager(sent: Sent, identity: DeviceIdentity, clock: ManualClock, **cfg: Any) -> LiveManager:
    return LiveManager(LiveConfig(**cfg), NoFrames(), sent, identity, device_id=DEVICE, site_id=SITE,
                       topic_for=lambda s: f"live/{s}", clock=clock, moment=lambda: moment(clock), threaded=False)


def frames(mgr: LiveManager, clock: ManualClock, n: int, w: int = 320, h: int = 180, fps: float = 15) -> None:
    rng = np.random.default_rng(1)
    for i in range(n):
        clock.advance(1 / fps)
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        mgr.step(Frame(image=img, index=i, wall_ns=clock.wall_ns(), mono_ns=clock.mono_ns()))


def key(identity: DeviceIdentity) -> ec.EllipticCurvePublicKey:
    k = identity.cert.public_key()
    assert isinstance(k, ec.EllipticCurvePublicKey)
    return k


def test_fragments_are_signed_bound_keep_aspect_and_decode(identity: DeviceIdentity,
                                                           manual_clock: ManualClock) -> None:
    sent = Sent()
    mgr = manager(sent, identity, manual_clock)
    nonce = secrets.token_hex(16)
    reply = mgr.start(request(nonce), LiveStartArgs(codec="h264", width=256, height=256, fps=15))
    assert reply["codec"] == "h264" and reply["fragment_ms"] == 200
    frames(mgr, manual_clock, 45)
    out = [verify_message(p, key(identity), device=DEVICE, session=reply["session"], nonce=nonce)
           for _t, p, _q in sent.msgs]
    assert out[0].header["kind"] == "init" and all(f.header["kind"] == "media" for f in out[1:])
    assert [f.header["seq"] for f in out] == list(range(len(out)))
    media = [f.header for f in out[1:]]
    assert media[0]["keyframe"] and (media[0]["width"], media[0]["height"]) == (256, 144)  # 16:9 kept
    assert all(h["frame_count"] == 3 for h in media)  # 200 ms at 15 fps
    assert all(h["frames"][0][1] == h["capture_start_wall_us"] for h in media)
    assert all(q == 1 for _t, _p, q in sent.msgs)  # QoS 1: PUBACKs measure the uplink's lag
    # the fragments are a playable stream: init + fragments decode to as many frames as were signed
    stream = io.BytesIO(b"".join(f.data for f in out))
    with av.open(stream, format="mp4") as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == sum(h["frame_count"] for h in media)
    mgr.stop(request(nonce), LiveSessionArgs(session=reply["session"]))


def test_tampered_or_foreign_fragment_is_refused(identity: DeviceIdentity, manual_clock: ManualClock) -> None:
    sent = Sent()
    mgr = manager(sent, identity, manual_clock)
    nonce = secrets.token_hex(16)
    reply = mgr.start(request(nonce), LiveStartArgs(codec="h264", width=320, height=180))
    frames(mgr, manual_clock, 12)
    payload = sent.msgs[1][1]
    flipped = payload[:-10] + bytes([payload[-10] ^ 1]) + payload[-9:]
    with pytest.raises(VerificationError, match="do not match the signed hash"):
        verify_message(flipped, key(identity), device=DEVICE, session=reply["session"], nonce=nonce)
    with pytest.raises(VerificationError, match="nonce"):
        verify_message(payload, key(identity), device=DEVICE, session=reply["session"], nonce="other")
    head, _sig, data = unpack_message(payload)
    import json

    header = json.loads(head)
    header["frames"] = [[0, 1]] * 300  # signed, but a shape the player must not be fed
    with pytest.raises(VerificationError, match="frames"):
        verify_message(pack_message(header, identity, data), key(identity), device=DEVICE,
                       session=reply["session"], nonce=nonce)


def test_two_viewers_share_one_encoder_and_a_joiner_starts_at_a_keyframe(identity: DeviceIdentity,
                                                                         manual_clock: ManualClock) -> None:
    sent = Sent()
    mgr = manager(sent, identity, manual_clock, gop_s=10.0)
    a, b = secrets.token_hex(16), secrets.token_hex(16)
    ra = mgr.start(request(a), LiveStartArgs(codec="h264", width=320, height=180))
    frames(mgr, manual_clock, 20)
    rb = mgr.start(request(b, key_id="b" * 64), LiveStartArgs(codec="h264", width=320, height=180))
    assert len(mgr._channels) == 1
    frames(mgr, manual_clock, 12)
    to_b = [verify_message(p, key(identity), device=DEVICE, session=rb["session"], nonce=b)
            for t, p, _q in sent.msgs if t.endswith(rb["session"])]
    assert to_b[0].header["kind"] == "init" and to_b[1].header["keyframe"]  # no 10 s wait for the GOP
    assert any(t.endswith(ra["session"]) for t, _p, _q in sent.msgs[-3:])


def test_bitrate_steps_down_when_acks_lag_and_back_up(identity: DeviceIdentity, manual_clock: ManualClock) -> None:
    ladder = RateLadder(2000, 250)
    assert ladder.rungs[0] == 2000 and ladder.rungs[-1] == 250
    t = 1000.0
    assert ladder.observe(2.0, t) == ladder.rungs[1]
    assert ladder.observe(2.0, t + 1) is None  # one step per two seconds
    assert ladder.observe(2.0, t + 2.5) == ladder.rungs[2]
    assert ladder.observe(0.0, t + 5) is None  # not yet recovered
    assert ladder.observe(0.0, t + 11) == ladder.rungs[1]
    sent = Sent()
    mgr = manager(sent, identity, manual_clock)
    mgr.start(request(secrets.token_hex(16)), LiveStartArgs(codec="h264", width=320, height=180, bitrate_kbps=1000))
    frames(mgr, manual_clock, 6)
    sent.stuck = True  # the broker stops acknowledging: the session lags
    before = len(sent.msgs)
    frames(mgr, manual_clock, 90)
    ch = next(iter(mgr._channels.values()))
    assert ch.encoder is not None and ch.encoder.bitrate_kbps < 1000
    s = next(iter(ch.sessions.values()))
    assert s.video.skipped > 0 and len(sent.msgs) - before < 30  # skipped instead of queueing


def test_fit_size_keeps_aspect() -> None:
    assert fit_size(1920, 1080, 1280, 720) == (1280, 720)
    assert fit_size(640, 360, 640, 480) == (640, 360)
    assert fit_size(640, 480, 1280, 720) == (640, 480)  # never enlarged
    assert fit_size(1280, 960, 1280, 720) == (960, 720)


def test_a_device_with_h264_off_refuses_it_naming_the_codec(identity: DeviceIdentity,
                                                            manual_clock: ManualClock) -> None:
    from agent.wire.commands import CommandRejected

    mgr = manager(Sent(), identity, manual_clock, h264=False)
    with pytest.raises(CommandRejected, match="codec") as err:
        mgr.start(request(secrets.token_hex(16)), LiveStartArgs(codec="h264"))
    assert err.value.code == "bad_args"

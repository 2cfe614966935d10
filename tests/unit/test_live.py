"""Live sessions, driven step by step on a manual clock (no threads, no broker)."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.clock import ManualClock
from agent.core.errors import VerificationError
from agent.core.model import Frame
from agent.device.sealer import Sealer
from agent.signing.keys import DeviceIdentity
from agent.uplink.command_controller import LiveSessionArgs, LiveStartArgs
from agent.uplink.live import LiveManager
from agent.uplink.settings_commands import LiveConfig
from agent.wire.commands import CommandRejected, CommandRequest
from agent.wire.live_frames import pack_message, session_id_for, unpack_message, verify_message
from tests.support.helpers import moment

DEVICE, SITE = "test-device", "test-site"


class Sent:
    def __init__(self) -> None:
        self.msgs: list[tuple[str, bytes, int]] = []

    def __call__(self, topic: str, payload: bytes, qos: int) -> None:
        self.msgs.append((topic, payload, qos))


class NoFrames:
    def subscribe(self, name: str, maxsize: int = 4) -> Any:
        raise AssertionError("step() tests never subscribe")

    def unsubscribe(self, sub: Any) -> None:
        pass


def request(command: str, officer: str = "officer-alice", key_id: str = "a" * 64,
            nonce: str | None = None) -> CommandRequest:
    return CommandRequest(command, {}, DEVICE, officer, key_id, 0, 1, nonce or secrets.token_hex(16),
                          {"body": {"command": command}})


@pytest.fixture
def sent() -> Sent:
    return Sent()


def manager(cfg: LiveConfig, sent: Sent, identity: DeviceIdentity, clock: ManualClock,
            sealer: Sealer | None = None) -> LiveManager:
    return LiveManager(cfg, NoFrames(), sent, identity, device_id=DEVICE, site_id=SITE,
                       topic_for=lambda s: f"evidence/{SITE}/{DEVICE}/live/{s}", clock=clock,
                       moment=lambda: moment(clock), seal=None if sealer is None else sealer.seal,
                       threaded=False)


def frame(clock: ManualClock, index: int, w: int = 64, h: int = 48) -> Frame:
    img = np.full((h, w, 3), index % 255, np.uint8)
    return Frame(image=img, index=index, wall_ns=clock.wall_ns(), mono_ns=clock.mono_ns())


def device_key(identity: DeviceIdentity) -> ec.EllipticCurvePublicKey:
    key = identity.cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def run(mgr: LiveManager, clock: ManualClock, seconds: float, fps: float, start_index: int = 0) -> int:
    n = int(seconds * fps)
    for i in range(n):
        clock.advance(1 / fps)
        mgr.step(frame(clock, start_index + i))
    return start_index + n


def test_frames_are_signed_bound_and_rate_limited(sent: Sent, identity: DeviceIdentity,
                                                  manual_clock: ManualClock, sealer: Sealer) -> None:
    cfg = LiveConfig(max_width=64, max_height=48, default_width=32, default_height=24, max_fps=10, default_fps=5)
    mgr = manager(cfg, sent, identity, manual_clock, sealer)
    req = request("live.start")
    info = mgr.start(req, LiveStartArgs(width=4000, height=4000, fps=100, quality=100, seconds=2))
    assert (info["width"], info["height"], info["fps"], info["quality"]) == (64, 48, 10, 90)  # clamped
    assert info["session"] == session_id_for(req.nonce) and info["topic"].endswith(info["session"])
    run(mgr, manual_clock, 1.0, 30)  # camera at 30 fps, session at 10 fps
    frames = [verify_message(p, device_key(identity), device=DEVICE, session=info["session"], nonce=req.nonce)
              for _t, p, _q in sent.msgs]
    assert 9 <= len(frames) <= 11 and all(f.header["width"] == 64 for f in frames)
    assert [f.header["seq"] for f in frames] == list(range(len(frames)))
    assert all(q == 0 for _t, _p, q in sent.msgs)
    h = frames[0].header
    assert h["gps"]["fix"] == "3d" and h["time"]["source"] == "ntp" and h["officer"] == "officer-alice"
    assert h["jpeg_sha256"] == hashlib.sha256(frames[0].jpeg).hexdigest()
    assert frames[0].jpeg[:2] == b"\xff\xd8"


def test_duration_end_is_sealed_with_frame_hashes(sent: Sent, identity: DeviceIdentity,
                                                  manual_clock: ManualClock, sealer: Sealer) -> None:
    mgr = manager(LiveConfig(), sent, identity, manual_clock, sealer)
    req = request("live.start")
    info = mgr.start(req, LiveStartArgs(width=64, height=48, fps=10, seconds=1))
    run(mgr, manual_clock, 1.5, 10)
    assert mgr.active() == []
    end = verify_message(sent.msgs[-1][1], device_key(identity), device=DEVICE, session=info["session"],
                         nonce=req.nonce)
    assert end.end and end.header["reason"] == "duration" and sent.msgs[-1][2] == 1
    [item] = mgr.sealed
    assert item.kind == "live" and item.record["extra"]["stop_reason"] == "duration"
    assert item.record["extra"]["nonce"] == req.nonce and item.record["end"]
    assert item.media_path is not None
    lines = [json.loads(x) for x in Path(item.media_path).read_text().splitlines()]
    assert len(lines) == end.header["frames"] == len(sent.msgs) - 1
    assert [x["message_sha256"] for x in lines] == [hashlib.sha256(p).hexdigest() for _t, p, _q in sent.msgs[:-1]]


def test_keepalive_loss_and_keepalive(sent: Sent, identity: DeviceIdentity, manual_clock: ManualClock) -> None:
    mgr = manager(LiveConfig(keepalive_timeout_s=2.0), sent, identity, manual_clock)
    kept = request("live.start")
    lost = request("live.start", officer="officer-bob", key_id="b" * 64)
    s_kept = mgr.start(kept, LiveStartArgs(seconds=60))["session"]
    s_lost = mgr.start(lost, LiveStartArgs(seconds=60))["session"]
    for _ in range(5):
        run(mgr, manual_clock, 1.0, 5)
        mgr.keepalive(request("live.keepalive", nonce=None), LiveSessionArgs(session=s_kept))
    assert mgr.active() == [s_kept]
    ends = [unpack_message(p)[0] for t, p, _q in sent.msgs if t.endswith(s_lost)]
    assert json.loads(ends[-1])["reason"] == "keepalive"
    mgr.close()
    assert mgr.active() == []


def test_stop_only_by_owner_and_unknown_session(sent: Sent, identity: DeviceIdentity,
                                                manual_clock: ManualClock) -> None:
    mgr = manager(LiveConfig(), sent, identity, manual_clock)
    sid = mgr.start(request("live.start"), LiveStartArgs())["session"]
    with pytest.raises(CommandRejected) as info:
        mgr.stop(request("live.stop", key_id="b" * 64), LiveSessionArgs(session=sid))
    assert info.value.code == "unauthorized"
    with pytest.raises(CommandRejected) as info:
        mgr.keepalive(request("live.keepalive"), LiveSessionArgs(session="nope"))
    assert info.value.code == "bad_args"
    assert mgr.stop(request("live.stop"), LiveSessionArgs(session=sid))["session"] == sid
    assert mgr.active() == []
    mgr.close()


def test_on_active_follows_first_and_last_session(sent: Sent, identity: DeviceIdentity,
                                                  manual_clock: ManualClock) -> None:
    calls: list[bool] = []
    mgr = LiveManager(LiveConfig(), NoFrames(), sent, identity, device_id=DEVICE, site_id=SITE,
                      topic_for=lambda s: f"t/{s}", clock=manual_clock, moment=lambda: moment(manual_clock),
                      threaded=False, on_active=calls.append)
    a = mgr.start(request("live.start"), LiveStartArgs())["session"]
    mgr.start(request("live.start"), LiveStartArgs())
    mgr.stop(request("live.stop"), LiveSessionArgs(session=a))
    assert calls == [True]
    mgr.close()
    assert calls == [True, False]


def test_session_limit(sent: Sent, identity: DeviceIdentity, manual_clock: ManualClock) -> None:
    mgr = manager(LiveConfig(max_sessions=2), sent, identity, manual_clock)
    mgr.start(request("live.start"), LiveStartArgs())
    mgr.start(request("live.start"), LiveStartArgs())
    with pytest.raises(CommandRejected) as info:
        mgr.start(request("live.start"), LiveStartArgs())
    assert info.value.code == "busy"
    mgr.close()


def test_two_sessions_same_params_share_one_encode(sent: Sent, identity: DeviceIdentity,
                                                   manual_clock: ManualClock) -> None:
    mgr = manager(LiveConfig(), sent, identity, manual_clock)
    a, b = request("live.start"), request("live.start", officer="officer-bob", key_id="b" * 64)
    sa = mgr.start(a, LiveStartArgs(width=64, height=48))["session"]
    sb = mgr.start(b, LiveStartArgs(width=64, height=48))["session"]
    manual_clock.advance(0.1)
    mgr.step(frame(manual_clock, 1))
    fa = verify_message(sent.msgs[0][1], device_key(identity), device=DEVICE, session=sa, nonce=a.nonce)
    fb = verify_message(sent.msgs[1][1], device_key(identity), device=DEVICE, session=sb, nonce=b.nonce)
    assert fa.jpeg == fb.jpeg and fa.header["frame_index"] == fb.header["frame_index"] == 1
    with pytest.raises(VerificationError, match="nonce"):  # officer B cannot pass A's frame as his own
        verify_message(sent.msgs[0][1], device_key(identity), device=DEVICE, session=sa, nonce=b.nonce)
    mgr.close()


def test_tampering_is_detected(identity: DeviceIdentity) -> None:
    header = {"typ": "evidence-live-frame/1", "device": DEVICE, "session": "s1", "nonce": "n",
              "jpeg_sha256": hashlib.sha256(b"JPEG").hexdigest()}
    msg = pack_message(header, identity, b"JPEG")
    key = device_key(identity)
    assert verify_message(msg, key, device=DEVICE, session="s1", nonce="n").jpeg == b"JPEG"
    with pytest.raises(VerificationError, match="JPEG"):
        verify_message(msg[:-4] + b"FAKE", key, device=DEVICE, session="s1", nonce="n")
    with pytest.raises(VerificationError, match="signature"):
        verify_message(msg.replace(b'"s1"', b'"s2"'), key, device=DEVICE, session="s2", nonce="n")
    with pytest.raises(VerificationError, match="session"):
        verify_message(msg, key, device=DEVICE, session="s9", nonce="n")
    for bad in (b"", b"EVLF", b"XXXX" + msg[4:], msg[:12], msg[:5] + b"\xff\xff\xff\xff" + msg[9:]):
        with pytest.raises(VerificationError):
            verify_message(bad, key, device=DEVICE, session="s1", nonce="n")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(VerificationError, match="signature"):
        verify_message(msg, other, device=DEVICE, session="s1", nonce="n")


def test_live_config_validation() -> None:
    with pytest.raises(ValueError, match="default_fps"):
        LiveConfig(max_fps=5, default_fps=10)
    with pytest.raises(ValueError):
        LiveConfig.model_validate({"max_fps": 5, "unknown": 1})

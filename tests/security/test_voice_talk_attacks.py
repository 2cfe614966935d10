"""Attacks on the officer's voice to the site speaker, written first: the device plays and seals only what the
officer of this voice session signed for it, in order, live and at real-time pace."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.audio.base import AudioSink
from agent.audio.opus import OpusEncoder
from agent.audio.settings import AudioConfig
from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity, key_id_of
from agent.uplink.command_controller import LiveSessionArgs, VoiceStartArgs
from agent.uplink.voice import VoiceManager
from agent.wire.live_frames import session_id_for
from tests.support.helpers import moment
from tests.support.voice import DEVICE, SITE, QuietSource, Sent, peak_hz, request, talk_message, tone

ALICE = ec.generate_private_key(ec.SECP256R1())
MALLORY = ec.generate_private_key(ec.SECP256R1())  # trusted too, but not the officer of this session
KEYS = {key_id_of(k.public_key()): k.public_key() for k in (ALICE, MALLORY)}


class Speaker(AudioSink):
    def __init__(self) -> None:
        self.pcm: list[np.ndarray] = []

    def start(self) -> None:
        pass

    def write(self, pcm: Any) -> None:
        self.pcm.append(np.asarray(pcm))

    def close(self) -> None:
        pass


@pytest.fixture
def rig(identity: DeviceIdentity, manual_clock: ManualClock, sealer: Sealer) -> dict[str, Any]:
    cfg = AudioConfig(enabled=True, source="file", source_file=Path("unused.wav"), sink="none")
    speaker = Speaker()
    subs: list[str] = []
    mgr = VoiceManager(cfg, Sent(), identity, device_id=DEVICE, site_id=SITE,
                       topic_for=lambda s: f"evidence/{SITE}/{DEVICE}/live/{s}", clock=manual_clock,
                       moment=lambda: moment(manual_clock), seal=sealer.seal,
                       source_factory=lambda n: QuietSource(cfg, manual_clock, n),
                       talk_for=lambda s: f"evidence/{SITE}/{DEVICE}/talk/{s}",
                       subscribe=lambda topic, handler, qos: subs.append(topic),
                       unsubscribe=lambda topic, handler: subs.remove(topic), officer_key=KEYS.get,
                       sink_factory=lambda: speaker)
    mgr._ensure_worker = lambda: None  # type: ignore[method-assign]  # the test drives hear()
    mgr._ensure_speaker = lambda: None  # type: ignore[method-assign]
    kid = key_id_of(ALICE.public_key())
    req = request("voice.start", key_id=kid)
    info = mgr.start(req, VoiceStartArgs())
    enc = OpusEncoder(24, 20)
    pcm = tone(440, 2.0)
    packets = [p for i in range(0, pcm.size, 960) for p in enc.encode(pcm[i:i + 960])]
    return {"mgr": mgr, "speaker": speaker, "subs": subs, "sid": info["session"], "nonce": req.nonce, "kid": kid,
            "packets": packets, "clock": manual_clock}


def msg(r: dict[str, Any], seq: int, *, key: Any = ALICE, **kw: Any) -> bytes:
    args: dict[str, Any] = {"session": r["sid"], "nonce": r["nonce"], "key_id": r["kid"], "seq": seq,
                            "wall_us": r["clock"].wall_ns() // 1000, "packets": r["packets"][seq * 5:seq * 5 + 5]}
    args.update(kw)
    return talk_message(key, **args)


def accepted(r: dict[str, Any]) -> int:
    return int(r["mgr"]._sessions[r["sid"]].talk.accepted)


def test_genuine_voice_is_played_and_sealed(rig: dict[str, Any], vault: Vault) -> None:
    assert rig["subs"] == [f"evidence/{SITE}/{DEVICE}/talk/{rig['sid']}"]
    for seq in range(20):
        rig["mgr"].hear(rig["sid"], msg(rig, seq))
        rig["clock"].advance(0.1)
    assert accepted(rig) == 20
    played = np.concatenate(rig["speaker"].pcm)
    assert abs(peak_hz(played[4800:]) - 440) < 5
    out = rig["mgr"].stop(request("voice.stop", key_id=rig["kid"]), LiveSessionArgs(session=rig["sid"]))
    assert rig["subs"] == []
    rows = [r for r in vault.rows() if r.kind == "audio" and r.seq in out["sealed"]]
    assert len(rows) == 1 and rows[0].media_path is not None  # the officer's spurt (the site sent nothing)


def test_forged_other_officer_and_other_session_refused(rig: dict[str, Any]) -> None:
    untrusted = ec.generate_private_key(ec.SECP256R1())
    rig["mgr"].hear(rig["sid"], msg(rig, 0, key=untrusted))  # signed by a key nobody trusts
    rig["mgr"].hear(rig["sid"], msg(rig, 0, key=MALLORY, key_id=key_id_of(MALLORY.public_key())))  # another officer
    rig["mgr"].hear(rig["sid"], msg(rig, 0, key=MALLORY))  # claims Alice's key id, signed by Mallory
    other = secrets.token_hex(16)
    rig["mgr"].hear(rig["sid"], msg(rig, 0, session=session_id_for(other), nonce=other))  # for another session
    rig["mgr"].hear(rig["sid"], msg(rig, 0, device="cam-other"))  # for another device
    rig["mgr"].hear("0" * 24, msg(rig, 0))  # on a topic of no session: ignored
    assert accepted(rig) == 0 and rig["mgr"]._sessions[rig["sid"]].talk.refused == 5
    assert rig["speaker"].pcm == []


def test_replayed_old_and_flooding_voice_refused(rig: dict[str, Any]) -> None:
    first = msg(rig, 0)
    rig["mgr"].hear(rig["sid"], first)
    rig["mgr"].hear(rig["sid"], first)  # replayed
    rig["mgr"].hear(rig["sid"], msg(rig, 1, wall_us=rig["clock"].wall_ns() // 1000 - 60_000_000))  # a minute old
    assert accepted(rig) == 1
    for seq in range(2, 60):  # more than real time allows, all at one instant
        rig["mgr"].hear(rig["sid"], msg(rig, seq, packets=rig["packets"][(seq % 20) * 5:(seq % 20) * 5 + 5]))
    assert accepted(rig) < 30


def test_garbage_opus_refused(rig: dict[str, Any]) -> None:
    rig["mgr"].hear(rig["sid"], msg(rig, 0, packets=[bytes([0x18]) + b"\x00" * 40]))  # a 60 ms TOC
    rig["mgr"].hear(rig["sid"], msg(rig, 1, packets=[b"\x08" + b"\xff" * 1274] * 50))  # signed, well-formed TOC
    assert rig["mgr"]._sessions[rig["sid"]].talk.refused >= 1
    assert len(rig["speaker"].pcm) <= 50  # whatever libopus makes of valid-TOC noise is bounded by the limits

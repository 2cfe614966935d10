"""Voice sessions on the device, driven block by block on a manual clock; the audio backends and Opus."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from agent.audio.base import AudioError
from agent.audio.file_sink import FileSink
from agent.audio.file_source import FileSource
from agent.audio.opus import OpusDecoder, OpusEncoder
from agent.audio.settings import AudioConfig
from agent.core.clock import ManualClock, SystemClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity
from agent.uplink.command_controller import LiveSessionArgs
from agent.wire.audio_frames import verify_audio
from agent.wire.commands import CommandRejected, Permissions
from agent.wire.live_frames import session_id_for
from tests.support.helpers import moment
from tests.support.voice import (
    DEVICE,
    QuietSource,
    Sent,
    peak_hz,
    request,
    speak,
    start,
    tone,
    voice_manager,
    write_wav,
)


def decode_ogg(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def test_session_sends_signed_audio_and_seals_ogg_segments(identity: DeviceIdentity, manual_clock: ManualClock,
                                                           sealer: Sealer, vault: Vault) -> None:
    sent = Sent()
    mgr = voice_manager(identity, manual_clock, sent, sealer, segment_seconds=2)
    req, info = start(mgr)
    assert info["session"] == session_id_for(req.nonce) and info["topic"].endswith(info["session"])
    t0 = manual_clock.wall_ns()
    speak(mgr, manual_clock, tone(700, 5.0))
    out = mgr.stop(request("voice.stop", nonce=None, key_id="a" * 64), LiveSessionArgs(session=info["session"]))
    assert len(out["sealed"]) == 3  # 2 s + 2 s + the last second
    key = identity.cert.public_key()
    msgs = [verify_audio(m, key, device=DEVICE, session=info["session"], nonce=req.nonce)  # type: ignore[arg-type]
            for _, m, _ in sent.msgs]
    assert msgs[-1].end and [s["seq"] for s in msgs[-1].header["sealed"]] == out["sealed"]
    decoder = OpusDecoder()
    heard = np.concatenate([decoder.decode(p) for m in msgs[:-1] for p in m.packets])
    assert abs(peak_hz(heard[4800:]) - 700) < 5
    rows = [r for r in vault.rows() if r.kind == "audio"]
    assert [r.seq for r in rows] == out["sealed"]
    assert rows[0].wall_us == t0 // 1000  # aligned to the capture time of the first sample
    for r in rows:
        assert r.media_path is not None and r.media_path.endswith(".audio.ogg")
        assert abs(peak_hz(decode_ogg((vault.path / r.media_path).read_bytes())[4800:]) - 700) < 5
    record = json.loads((vault.path / rows[0].record_path).read_text().splitlines()[0])  # the sidecar's record line
    extra = record["extra"]
    assert extra["direction"] == "site" and extra["session"] == info["session"] and extra["packets"] == 100
    assert len(extra["message_sha256"]) == 20


def test_keepalive_duration_owner_and_limits(identity: DeviceIdentity, manual_clock: ManualClock) -> None:
    sent = Sent()
    mgr = voice_manager(identity, manual_clock, sent, keepalive_timeout_s=2, max_sessions=1)
    _req, info = start(mgr)
    with pytest.raises(CommandRejected, match="busy"):
        start(mgr)
    with pytest.raises(CommandRejected, match="another officer"):
        mgr.keepalive(request("voice.keepalive", key_id="b" * 64), LiveSessionArgs(session=info["session"]))
    manual_clock.advance(3)
    mgr._expire()
    assert mgr.active() == []
    _req, info = start(mgr, seconds=1)
    manual_clock.advance(1.5)
    mgr._expire()
    assert mgr.active() == [] and b"duration" in sent.msgs[-1][1]


def test_disabled_device_refuses_voice(identity: DeviceIdentity, manual_clock: ManualClock) -> None:
    mgr = voice_manager(identity, manual_clock, Sent())
    mgr.cfg = mgr.cfg.model_copy(update={"enabled": False})
    with pytest.raises(CommandRejected, match="disabled"):
        start(mgr)


def test_voice_start_grant_brings_its_keepalive_and_stop(tmp_path: Path) -> None:
    (tmp_path / "permissions.json").write_text(json.dumps({"officer-alice": ["voice.start"]}))
    granted, _ = Permissions.load(tmp_path).for_officer("officer-alice")
    assert {"voice.start", "voice.keepalive", "voice.stop"} <= granted and "live.start" not in granted


def test_config_needs_the_files_it_names() -> None:
    with pytest.raises(ValueError, match="source_file"):
        AudioConfig(enabled=True, source="file", sink="none")
    with pytest.raises(ValueError, match="extra"):
        AudioConfig(bogus=1)  # type: ignore[call-arg]


def test_file_source_resamples_and_paces(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "tone.wav", tone(1000, 0.5)[::3], rate=16_000)  # 16 kHz file
    cfg = AudioConfig(enabled=True, source="file", source_file=wav, sink="none")
    clock = ManualClock()
    src = FileSource(cfg, clock, 960)
    src.start()
    assert src.read(0.001) is None  # the first 20 ms have not been spoken yet
    clock.advance(0.02)
    block = src.read(0.001)
    assert block is not None and block.pcm.size == 960 and block.mono_ns == clock.mono_ns() - 20_000_000
    blocks = []
    for _ in range(50):  # 1 s: loops over the 0.5 s file
        clock.advance(0.02)
        b = src.read(0.001)
        assert b is not None
        blocks.append(b.pcm)
    assert abs(peak_hz(np.concatenate(blocks)) - 1000) < 5
    src.close()


def test_file_source_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not audio")
    src = FileSource(AudioConfig(enabled=True, source="file", source_file=bad, sink="none"), SystemClock(), 960)
    with pytest.raises(AudioError, match=r"x\.wav"):
        src.start()


def test_file_sink_writes_a_growing_wav(tmp_path: Path) -> None:
    import wave

    out = tmp_path / "speaker.wav"
    sink = FileSink(AudioConfig(sink="file", sink_file=out, source="file"), SystemClock())
    sink.start()
    sink.write(tone(300, 0.5))
    with wave.open(str(out)) as w:  # readable while open
        assert w.getnframes() == 24_000
    sink.close()
    sink.close()


def test_opus_round_trip_and_decoder_refuses_garbage() -> None:
    enc, dec = OpusEncoder(24, 20), OpusDecoder()
    pcm = tone(440, 1.0)
    out = np.concatenate([dec.decode(p) for i in range(0, pcm.size, 960) for p in enc.encode(pcm[i:i + 960])])
    assert abs(peak_hz(out[4800:]) - 440) < 5
    with pytest.raises(AudioError):
        enc.encode(pcm[:100])


def test_close_ends_sessions_and_is_idempotent(identity: DeviceIdentity, manual_clock: ManualClock) -> None:
    sent = Sent()
    mgr = voice_manager(identity, manual_clock, sent)
    start(mgr)
    mgr.close()
    mgr.close()
    assert mgr.active() == [] and b"shutdown" in sent.msgs[-1][1]
    assert threading.active_count() >= 1


class BrokenMicrophone(QuietSource):
    def read(self, timeout: float) -> None:
        raise AudioError("USB speakerphone unplugged")


def test_dead_audio_worker_is_supervised_and_sessions_end_sealed(identity: DeviceIdentity, sealer: Sealer) -> None:
    """A microphone failing kills voice-site: the supervisor sees it, ends the sessions (sealed) and restarts."""
    from agent.core.health import Health
    from agent.core.supervisor import Restart, Supervisor
    from agent.core.threads import set_owner
    from agent.uplink.voice import WORKER, VoiceManager

    clock = SystemClock()
    cfg = AudioConfig(enabled=True, source="file", source_file=Path("unused.wav"), sink="none")
    sent = Sent()
    mgr = VoiceManager(cfg, sent, identity, device_id=DEVICE, site_id="test-site", topic_for=lambda s: f"t/{s}",
                       clock=clock, moment=lambda: moment(ManualClock()), seal=sealer.seal,
                       source_factory=lambda n: BrokenMicrophone(cfg, clock, n))
    deaths: list[str] = []
    restarted = threading.Event()
    health = Health()
    sup = Supervisor("t", escalate=lambda r: None, on_death=lambda d, a: deaths.append(f"{d.part}:{a}"),
                     health=health)

    def restart() -> None:
        mgr.restart()
        restarted.set()

    sup.restartable(WORKER, Restart(restart, backoff_s=(0.01, 0.02)))
    sup.start()
    sup.own()
    try:
        start(mgr)
        assert restarted.wait(30)
        assert deaths == [f"{WORKER}:restart"] and mgr.active() == []
        assert b"audio_failed" in sent.msgs[-1][1]
        assert mgr.health() is None
    finally:
        set_owner(None)
        sup.close()
        mgr.close()


def test_audio_needs_the_uplink(tmp_path: Path) -> None:
    from agent.core.errors import ConfigError
    from agent.device.config import parse_config

    with pytest.raises(ConfigError, match=r"audio\.enabled needs the uplink"):
        parse_config({"audio": {"enabled": True, "source": "file", "source_file": "x.wav", "sink": "none"}})

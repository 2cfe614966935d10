"""Voice test helpers: a tone, a manager driven block by block, its signed messages."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import numpy as np

from agent.audio.base import AudioBlock, AudioSource
from agent.audio.settings import AudioConfig
from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.signing.keys import DeviceIdentity
from agent.uplink.command_controller import VoiceStartArgs
from agent.uplink.voice import VoiceManager
from agent.wire.commands import CommandRequest
from tests.support.helpers import moment

DEVICE, SITE = "test-device", "test-site"
RATE = 48_000


def tone(freq: float, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate: int = RATE) -> Path:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def peak_hz(pcm: np.ndarray, rate: int = RATE) -> float:
    x = pcm.astype(np.float64)
    x = x - x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


class Sent:
    def __init__(self) -> None:
        self.msgs: list[tuple[str, bytes, int]] = []

    def __call__(self, topic: str, payload: bytes, qos: int, on_done: Any = None) -> None:
        self.msgs.append((topic, payload, qos))


class QuietSource(AudioSource):
    """Never delivers (tests push blocks through ``VoiceManager.step``)."""

    def start(self) -> None:
        pass

    def read(self, timeout: float) -> AudioBlock | None:
        return None

    def close(self) -> None:
        pass


def request(command: str, officer: str = "officer-alice", key_id: str = "a" * 64,
            nonce: str | None = None) -> CommandRequest:
    return CommandRequest(command, {}, DEVICE, officer, key_id, 0, 1, nonce or secrets.token_hex(16),
                          {"body": {"command": command}})


def voice_manager(identity: DeviceIdentity, clock: ManualClock, sent: Sent, sealer: Sealer | None = None,
                  **cfg: Any) -> VoiceManager:
    cfg.setdefault("packets_per_message", 5)
    config = AudioConfig(enabled=True, source="file", source_file=Path("unused.wav"), sink="none", **cfg)
    mgr = VoiceManager(config, sent, identity, device_id=DEVICE, site_id=SITE,
                       topic_for=lambda s: f"evidence/{SITE}/{DEVICE}/live/{s}", clock=clock,
                       moment=lambda: moment(clock), seal=None if sealer is None else sealer.seal,
                       source_factory=lambda n: QuietSource(config, clock, n))
    mgr._ensure_worker = lambda: None  # type: ignore[method-assign]  # tests drive step() themselves
    return mgr


def speak(mgr: VoiceManager, clock: ManualClock, pcm: np.ndarray) -> None:
    """Feed ``pcm`` through the manager one frame at a time, the clock advancing as if spoken."""
    n = mgr.frame_samples
    for i in range(0, pcm.size - n + 1, n):
        mgr.step(AudioBlock(pcm[i:i + n], clock.wall_ns(), clock.mono_ns()))
        clock.advance(n / RATE)


def start(mgr: VoiceManager, **args: Any) -> tuple[CommandRequest, dict[str, Any]]:
    req = request("voice.start")
    return req, dict(mgr.start(req, VoiceStartArgs(**args)))


class OfficerSigner:
    def __init__(self, key: Any) -> None:
        self.key = key

    def sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return bytes(self.key.sign(data, ec.ECDSA(hashes.SHA256())))


def talk_message(key: Any, *, session: str, nonce: str, key_id: str, seq: int, wall_us: int, packets: list[bytes],
                 officer: str = "officer-alice", device: str = DEVICE) -> bytes:
    """What the console sends for its officer (agent.customs.console.voice.VoiceListener.talk)."""
    from agent.wire.audio_frames import TALK_TYP, audio_header, pack_audio

    base = {"device": device, "site": SITE, "session": session, "nonce": nonce, "officer": officer, "key_id": key_id}
    h = audio_header(base, packets, seq=seq, frame_ms=20, bitrate_kbps=24, capture_wall_us=wall_us,
                     capture_mono_us=1, direction="officer")
    h["typ"] = TALK_TYP
    return pack_audio(h, OfficerSigner(key), packets)

"""The PortAudio backend against a stand-in for the ``sounddevice`` module (no sound card here), faithful to its
callback API: ``InputStream``/``OutputStream(samplerate, channels, dtype, blocksize, device, latency, callback)``,
``stream.time``, callbacks ``(indata|outdata, frames, time_info, status)`` with ``time_info.inputBufferAdcTime``."""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar

import numpy as np
import pytest

from agent.audio.base import AudioError, open_sink, open_source
from agent.audio.settings import AudioConfig
from agent.core.clock import ManualClock


class FakeStream:
    opened: ClassVar[list[FakeStream]] = []

    def __init__(self, *, samplerate: int, channels: int, dtype: str, device: Any, latency: str, callback: Any,
                 blocksize: int = 0) -> None:
        assert (samplerate, channels, dtype, latency) == (48_000, 1, "int16", "low")
        self.device, self.callback, self.blocksize = device, callback, blocksize
        self.time = 100.0  # PortAudio's stream clock, seconds
        self.started = self.closed = False
        FakeStream.opened.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("sounddevice")
    mod.InputStream = FakeStream  # type: ignore[attr-defined]
    mod.OutputStream = FakeStream  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", mod)
    FakeStream.opened = []
    return mod


def cfg(**kw: Any) -> AudioConfig:
    return AudioConfig(enabled=True, source="sounddevice", sink="sounddevice", **kw)


def test_microphone_blocks_are_stamped_from_the_adc_time(fake_sd: types.ModuleType) -> None:
    clock = ManualClock()
    src = open_source(cfg(input_device="2"), clock, 960)
    src.start()
    stream = FakeStream.opened[-1]
    assert stream.device == 2 and stream.blocksize == 960 and stream.started  # an index given as digits
    t = types.SimpleNamespace(inputBufferAdcTime=100.5)  # half a second after the stream clock we synced to
    stream.callback(np.full((960, 1), 7, np.int16), 960, t, None)
    block = src.read(0.1)
    assert block is not None and block.pcm.shape == (960,) and int(block.pcm[0]) == 7
    assert block.mono_ns == clock.mono_ns() + 500_000_000
    assert src.read(0.01) is None
    src.close()
    src.close()
    assert stream.closed


def test_speaker_plays_in_order_pads_silence_and_drops_the_oldest(fake_sd: types.ModuleType) -> None:
    sink = open_sink(cfg(output_device="USB speakerphone"), ManualClock())
    assert sink is not None
    sink.start()
    stream = FakeStream.opened[-1]
    assert stream.device == "USB speakerphone"
    sink.write(np.arange(1, 501, dtype=np.int16))
    out = np.zeros((960, 1), np.int16)
    stream.callback(out, 960, None, None)
    assert list(out[:500, 0]) == list(range(1, 501)) and not out[500:].any()  # an underrun plays silence
    for _ in range(100):  # 2 s queued: only the newest second is kept, so the officer stays live
        sink.write(np.full(960, 3, np.int16))
    assert sink._queued <= 48_000  # type: ignore[attr-defined]
    sink.close()
    assert stream.closed


def test_missing_portaudio_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as without the package
    src = open_source(cfg(), ManualClock(), 960)
    with pytest.raises(AudioError, match="libportaudio2"):
        src.start()


def test_none_sink_plays_nothing() -> None:
    assert open_sink(AudioConfig(sink="none"), ManualClock()) is None

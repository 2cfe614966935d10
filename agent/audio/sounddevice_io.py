"""The Pi's microphone and speaker through PortAudio (``sounddevice``, pip extra ``audio``): callback streams.

PortAudio calls back on its own real-time thread: the callbacks only copy samples into bounded queues
(never block, never log), and the voice worker reads them. A USB speakerphone (one device with microphone,
speaker and a hardware echo canceller) is the recommended hardware; see docs/voice.md.
"""

from __future__ import annotations

import collections
import queue
import threading
from typing import Any

import numpy as np

from agent.audio.base import SAMPLE_RATE, AudioBlock, AudioError, AudioSink, AudioSource


def _sd() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library itself is missing
        raise AudioError(f"audio backend 'sounddevice' needs the sounddevice package and libportaudio2 "
                         f"(pip install 'evidence-agent[audio]'; apt-get install libportaudio2): {exc}") from None
    return sounddevice


def _device(name: str | None) -> int | str | None:
    return int(name) if name is not None and name.isdigit() else name


class SoundDeviceSource(AudioSource):
    """An input stream with a block size of one Opus frame; each block is stamped from PortAudio's ADC time."""

    def start(self) -> None:
        sd = _sd()
        self._q: queue.Queue[AudioBlock] = queue.Queue(maxsize=50)  # a second of 20 ms blocks
        self.dropped = 0
        try:
            self._stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                                          blocksize=self.frame_samples, device=_device(self.cfg.input_device),
                                          latency="low", callback=self._callback)
            # PortAudio's stream clock -> our clocks, taken once before the first callback (both are monotonic)
            self._offset_mono = self.clock.mono_ns() - int(self._stream.time * 1e9)
            self._offset_wall = self.clock.wall_ns() - self.clock.mono_ns()
            self._stream.start()
        except Exception as exc:  # PortAudioError and friends
            raise AudioError(f"microphone {self.cfg.input_device or '(default)'}: {exc}") from None

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        mono = self._offset_mono + int(time_info.inputBufferAdcTime * 1e9)
        block = AudioBlock(indata[:, 0].copy(), mono + self._offset_wall, mono)
        try:
            self._q.put_nowait(block)
        except queue.Full:
            self.dropped += 1

    def read(self, timeout: float) -> AudioBlock | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            stream.stop()
            stream.close()


class SoundDeviceSink(AudioSink):
    """An output stream fed from a bounded sample queue; underruns play silence."""

    MAX_QUEUED_S = 1.0

    def start(self) -> None:
        sd = _sd()
        self._lock = threading.Lock()
        self._buf: collections.deque[np.ndarray] = collections.deque()
        self._queued = 0
        try:
            self._stream = sd.OutputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                                           device=_device(self.cfg.output_device), latency="low",
                                           callback=self._callback)
            self._stream.start()
        except Exception as exc:
            raise AudioError(f"speaker {self.cfg.output_device or '(default)'}: {exc}") from None

    def write(self, pcm: np.ndarray[Any, Any]) -> None:
        with self._lock:
            self._buf.append(np.asarray(pcm, dtype=np.int16))
            self._queued += pcm.size
            while self._queued > self.MAX_QUEUED_S * SAMPLE_RATE and self._buf:  # stay live: drop the oldest
                self._queued -= self._buf.popleft().size

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        out = outdata[:, 0]
        pos = 0
        with self._lock:
            while pos < frames and self._buf:
                head = self._buf[0]
                take = min(frames - pos, head.size)
                out[pos:pos + take] = head[:take]
                pos += take
                self._queued -= take
                if take == head.size:
                    self._buf.popleft()
                else:
                    self._buf[0] = head[take:]
        out[pos:] = 0

    def close(self) -> None:
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            stream.stop()
            stream.close()

"""A file as the site speaker: what would be played is appended to a 48 kHz mono WAV (tests, demos)."""

from __future__ import annotations

import threading
import wave
from typing import Any

import numpy as np

from agent.audio.base import SAMPLE_RATE, AudioError, AudioSink


class FileSink(AudioSink):
    """Writes each block as it arrives; ``wave`` patches the header's lengths after every write, so a reader
    sees a valid WAV of what was played so far."""

    def start(self) -> None:
        if self.cfg.sink_file is None:
            raise AudioError("audio.sink_file is not set")
        self._lock = threading.Lock()
        try:
            self._wav: wave.Wave_write | None = wave.open(str(self.cfg.sink_file), "wb")  # noqa: SIM115  # open until close()
        except OSError as exc:
            raise AudioError(f"{self.cfg.sink_file}: cannot be written: {exc}") from None
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self.samples = 0

    def write(self, pcm: np.ndarray[Any, Any]) -> None:
        with self._lock:
            if self._wav is None:
                return
            self._wav.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
            self.samples += int(pcm.size)

    def close(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            if self._wav is not None:
                self._wav.close()
                self._wav = None

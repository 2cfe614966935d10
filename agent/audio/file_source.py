"""A file as the site microphone: a WAV/Ogg/Opus file decoded with PyAV and delivered in real time."""

from __future__ import annotations

import threading

import av
import numpy as np

from agent.audio.base import SAMPLE_RATE, AudioBlock, AudioError, AudioSource

MAX_FILE_SECONDS = 600  # decoded into memory: ten minutes of 48 kHz mono is 55 MiB


def decode_file(path: str) -> np.ndarray:
    """The whole file as 48 kHz mono int16; AudioError naming the file when it cannot be read."""
    out: list[np.ndarray] = []
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            total = 0
            for frame in container.decode(audio=0):
                for r in resampler.resample(frame):
                    out.append(r.to_ndarray().reshape(-1))
                    total += out[-1].size
                if total > MAX_FILE_SECONDS * SAMPLE_RATE:
                    raise AudioError(f"{path}: longer than {MAX_FILE_SECONDS} s")
            for r in resampler.resample(None):
                out.append(r.to_ndarray().reshape(-1))
    except (OSError, av.error.FFmpegError) as exc:
        raise AudioError(f"{path}: cannot be read as audio: {exc}") from None
    if not out or sum(a.size for a in out) == 0:
        raise AudioError(f"{path}: no audio samples")
    return np.concatenate(out).astype(np.int16)


class FileSource(AudioSource):
    """Blocks of the file paced by the clock: block *n* is returned once it would have been spoken."""

    def start(self) -> None:
        if self.cfg.source_file is None:
            raise AudioError("audio.source_file is not set")
        self._pcm = decode_file(str(self.cfg.source_file))
        self._closed = threading.Event()
        self._pos = 0
        self._n = 0
        self._t0_mono = self.clock.mono_ns()
        self._t0_wall = self.clock.wall_ns()

    def read(self, timeout: float) -> AudioBlock | None:
        frame_ns = self.frame_samples * 1_000_000_000 // SAMPLE_RATE
        first = self._t0_mono + self._n * frame_ns
        wait = (first + frame_ns - self.clock.mono_ns()) / 1e9  # the block is whole once its last sample is
        if wait > timeout:
            self._closed.wait(timeout)
            return None
        if wait > 0 and self._closed.wait(wait):
            return None
        self._n += 1
        return AudioBlock(self._take(), self._t0_wall + (first - self._t0_mono), first)

    def _take(self) -> np.ndarray:
        n, pcm = self.frame_samples, self._pcm
        if self._pos + n <= pcm.size:
            block = pcm[self._pos:self._pos + n]
            self._pos += n
            return block
        if not self.cfg.source_loop:
            rest = pcm[self._pos:]
            self._pos = pcm.size
            return np.concatenate([rest, np.zeros(n - rest.size, np.int16)])
        parts, need = [], n
        while need:
            if self._pos >= pcm.size:
                self._pos = 0
            take = min(need, pcm.size - self._pos)
            parts.append(pcm[self._pos:self._pos + take])
            self._pos += take
            need -= take
        return np.concatenate(parts)

    def close(self) -> None:
        if hasattr(self, "_closed"):
            self._closed.set()

"""What an audio backend must do: deliver the site microphone as timed blocks, or play the officer's voice.

Every backend works in one format: mono signed 16-bit PCM at 48 kHz (Opus's native rate), so nothing
downstream resamples. A backend module imports its third-party library inside itself only (``sounddevice``
is an optional extra); :func:`open_source` / :func:`open_sink` pick one by its configured name.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from agent.audio.settings import AudioConfig
    from agent.core.clock import Clock

SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class AudioBlock:
    """``pcm``: int16 samples (1-D); ``wall_ns``/``mono_ns``: when its first sample was captured."""

    pcm: np.ndarray[Any, Any]
    wall_ns: int
    mono_ns: int


class AudioSource(ABC):
    """A microphone. ``start()`` opens it; ``read(timeout)`` returns the next block of exactly
    ``frame_samples`` samples (in capture order, stamped with the capture time of its first sample), or None
    when none arrived within ``timeout`` seconds; ``close()`` releases it and is idempotent. ``read`` is
    called from one worker thread only; a backend whose device fails raises :class:`AudioError`."""

    def __init__(self, cfg: AudioConfig, clock: Clock, frame_samples: int) -> None:
        self.cfg, self.clock, self.frame_samples = cfg, clock, frame_samples

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def read(self, timeout: float) -> AudioBlock | None: ...

    @abstractmethod
    def close(self) -> None: ...


class AudioSink(ABC):
    """A speaker. ``start()`` opens it; ``write(pcm)`` queues int16 samples to play without blocking for long
    (a full queue drops the oldest audio: the conversation stays live); ``close()`` is idempotent."""

    def __init__(self, cfg: AudioConfig, clock: Clock) -> None:
        self.cfg, self.clock = cfg, clock

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def write(self, pcm: np.ndarray[Any, Any]) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class AudioError(RuntimeError):
    """An audio device or file failed (the message names it)."""


_SOURCES = {"file": "agent.audio.file_source:FileSource", "sounddevice": "agent.audio.sounddevice_io:SoundDeviceSource"}
_SINKS = {"file": "agent.audio.file_sink:FileSink", "sounddevice": "agent.audio.sounddevice_io:SoundDeviceSink"}


def _load(table: dict[str, str], name: str) -> Any:
    module, cls = table[name].split(":")
    return getattr(importlib.import_module(module), cls)


def open_source(cfg: AudioConfig, clock: Clock, frame_samples: int) -> AudioSource:
    source: AudioSource = _load(_SOURCES, cfg.source)(cfg, clock, frame_samples)
    return source


def open_sink(cfg: AudioConfig, clock: Clock) -> AudioSink | None:
    if cfg.sink == "none":
        return None
    sink: AudioSink = _load(_SINKS, cfg.sink)(cfg, clock)
    return sink

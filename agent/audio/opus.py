"""Opus through PyAV (libopus): an encoder for 48 kHz mono int16 blocks, a decoder, and Ogg/Opus files.

The packets the encoder makes are sent as they are and muxed as they are into the sealed Ogg file, so what
the officer heard and what is sealed are the same bytes.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av
import numpy as np

from agent.audio.base import SAMPLE_RATE, AudioError


class OpusEncoder:
    """One libopus encoder (VoIP mode); ``encode(pcm)`` takes one frame's samples, returns its packets."""

    def __init__(self, bitrate_kbps: int, frame_ms: int) -> None:
        self.frame_ms, self.bitrate_kbps = frame_ms, bitrate_kbps
        self.frame_samples = SAMPLE_RATE * frame_ms // 1000
        ctx: Any = av.CodecContext.create("libopus", "w")
        ctx.sample_rate, ctx.layout, ctx.format = SAMPLE_RATE, "mono", "s16"
        ctx.bit_rate = bitrate_kbps * 1000
        ctx.options = {"application": "voip", "frame_duration": str(frame_ms), "vbr": "on"}
        ctx.open()
        self._ctx = ctx
        self._pts = 0

    @property
    def extradata(self) -> bytes:
        return bytes(self._ctx.extradata or b"")

    def encode(self, pcm: np.ndarray[Any, Any]) -> list[bytes]:
        if pcm.size != self.frame_samples:
            raise AudioError(f"an Opus frame needs {self.frame_samples} samples, got {pcm.size}")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, self._pts
        self._pts += pcm.size
        return [bytes(p) for p in self._ctx.encode(frame)]


class OpusDecoder:
    """``decode(packet)`` -> int16 samples; a packet libopus refuses raises AudioError."""

    def __init__(self) -> None:
        ctx: Any = av.CodecContext.create("libopus", "r")
        ctx.sample_rate, ctx.layout = SAMPLE_RATE, "mono"
        self._ctx = ctx
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def decode(self, packet: bytes) -> np.ndarray[Any, Any]:
        try:
            frames = self._ctx.decode(av.Packet(packet))
            out = [r.to_ndarray().reshape(-1) for f in frames for r in self._resampler.resample(f)]
        except av.error.FFmpegError as exc:
            raise AudioError(f"Opus packet refused by the decoder: {exc}") from None
        return np.concatenate(out) if out else np.zeros(0, np.int16)


class OggOpusWriter:
    """Muxes already-encoded packets into an in-memory Ogg/Opus file (timestamps in 48 kHz samples)."""

    def __init__(self, extradata: bytes) -> None:
        self._buf = io.BytesIO()
        self._out: Any = av.open(self._buf, "w", format="ogg")
        self._stream: Any = self._out.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        self._stream.codec_context.extradata = extradata
        self._stream.time_base = Fraction(1, SAMPLE_RATE)
        self.samples = 0
        self.packets = 0

    def add(self, packet: bytes, samples: int) -> None:
        p = av.Packet(packet)
        p.stream = self._stream
        p.pts = p.dts = self.samples
        p.duration = samples
        p.time_base = Fraction(1, SAMPLE_RATE)
        self._out.mux(p)
        self.samples += samples
        self.packets += 1

    def finish(self) -> bytes:
        self._out.close()
        return self._buf.getvalue()

"""H.264 encoding into fragmented MP4 with PyAV: encoder choice, exact settings, one segment file.

Timestamps come from the frames' monotonic times (like picamera2's PyavOutput), not from the
wall clock at mux time, so a segment's duration is what the frames say. Each keyframe starts a
fragment that is flushed to the OS at once: after a kill -9 the file is readable up to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from agent.core.errors import CaptureError
from agent.core.model import Frame
from agent.video.settings import VideoConfig

TIME_BASE = Fraction(1, 90_000)  # the usual MP4 video timescale
FRAGMENT_FLAGS = "frag_keyframe+empty_moov+default_base_moof"


@dataclass(frozen=True)
class EncoderSettings:
    """Exactly how a segment was encoded (goes into the segment record)."""

    codec: str
    width: int
    height: int
    pix_fmt: str
    fps: float
    gop: int
    options: tuple[tuple[str, str], ...]
    container: str = "mp4"
    movflags: str = FRAGMENT_FLAGS

    def as_record(self) -> dict[str, Any]:
        return {"codec": self.codec, "width": self.width, "height": self.height, "pix_fmt": self.pix_fmt,
                "fps": self.fps, "gop": self.gop, "options": dict(self.options), "container": self.container,
                "movflags": self.movflags, "time_base": f"{TIME_BASE.numerator}/{TIME_BASE.denominator}",
                "input": "BGR24 -> I420 BT.601 limited range (OpenCV; swscale for odd sizes)"}


def _encoder_opens(name: str) -> bool:
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"  # type: ignore[attr-defined]
        ctx.time_base = Fraction(1, 30)
        ctx.open()
        ctx.close()  # type: ignore[attr-defined]
        return True
    except Exception:  # any libav failure means "not usable here"
        return False


_CHOSEN: dict[str, str] = {}


def choose_encoder(name: str) -> str:
    """``auto``: the V4L2 hardware encoder if it really opens (Pi 4), else libx264 (Pi 5, x86)."""
    if name != "auto":
        if name not in av.codecs_available:
            raise CaptureError(f"video encoder {name!r} is not in this libav build")
        return name
    if "auto" not in _CHOSEN:
        hw = "h264_v4l2m2m" in av.codecs_available and _encoder_opens("h264_v4l2m2m")
        _CHOSEN["auto"] = "h264_v4l2m2m" if hw else "libx264"
    return _CHOSEN["auto"]


def encoder_settings(cfg: VideoConfig, codec: str, width: int, height: int) -> EncoderSettings:
    gop = max(1, round(cfg.fps * cfg.fragment_seconds))
    if codec == "libx264":
        opts = {"preset": cfg.preset, "crf": str(cfg.crf), "g": str(gop), "keyint_min": str(gop),
                "sc_threshold": "0", "bf": "0"}
        if cfg.tune:
            opts["tune"] = cfg.tune
        if cfg.threads:
            opts["threads"] = str(cfg.threads)
    else:
        opts = {"b": f"{cfg.bitrate_kbps}k", "g": str(gop), "bf": "0"}
    return EncoderSettings(codec=codec, width=width, height=height, pix_fmt="yuv420p", fps=cfg.fps, gop=gop,
                           options=tuple(sorted(opts.items())))


class SegmentWriter:
    """One fragmented MP4 file being written by PyAV; pts come from the frames' monotonic times."""

    def __init__(self, path: Path, enc: EncoderSettings) -> None:
        self.path = path
        self.enc = enc
        try:
            # flush_packets: each finished fragment reaches the OS at once, so a kill -9 loses only the open one
            self._out = av.open(str(path), "w", format="mp4",
                                container_options={"movflags": enc.movflags, "flush_packets": "1"})
            stream = self._out.add_stream(enc.codec, rate=Fraction(enc.fps).limit_denominator(1001),
                                          options=dict(enc.options))
        except (av.FFmpegError, ValueError) as exc:
            raise CaptureError(f"cannot open {enc.codec} segment {path}: {exc}") from exc
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = enc.width, enc.height, enc.pix_fmt
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        self._stream = stream
        self._cv_convert = enc.pix_fmt == "yuv420p" and enc.width % 2 == 0 and enc.height % 2 == 0
        self._t0: int | None = None
        self._last_pts = -1
        self._closed = False

    def write(self, frame: Frame) -> None:
        img = frame.image
        if img.shape[1] != self.enc.width or img.shape[0] != self.enc.height:
            raise CaptureError(f"frame {frame.index} is {img.shape[1]}x{img.shape[0]}, "
                               f"segment is {self.enc.width}x{self.enc.height}")
        if self._t0 is None:
            self._t0 = frame.mono_ns
        pts = max(round((frame.mono_ns - self._t0) * 90_000 / 1e9), self._last_pts + 1)
        self._last_pts = pts
        if self._cv_convert:
            # OpenCV's BT.601 limited-range I420 conversion (what swscale does by default) is ~3x faster
            i420 = np.asarray(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
            vf = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        else:
            vf = av.VideoFrame.from_ndarray(img, format="bgr24")
        vf.pts, vf.time_base = pts, TIME_BASE
        for packet in self._stream.encode(vf):
            self._out.mux(packet)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
        finally:
            self._out.close()

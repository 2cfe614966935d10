"""H.264 encoding into fragmented MP4 with PyAV: encoder choice, exact settings, segment files.

One encoder serves a whole recording (opening x264 per segment cost more than encoding the frames):
each segment starts with a forced IDR frame (SPS/PPS in band), so every file plays on its own, and the
encoder's packets are muxed into the segment their frame belongs to. Frames arrive in I420 and go to
the encoder as they are. Timestamps come from the frames' monotonic times (like picamera2's
PyavOutput), not from the wall clock at mux time, so a segment's duration is what the frames say.
Each keyframe starts a fragment that is flushed to the OS at once: after a kill -9 the file is
readable up to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from agent.core.errors import CaptureError
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
                "input": "I420 BT.601 limited range from the camera or decoder (BGR sources: swscale)",
                "encoder_per": "recording (each segment opens on a forced IDR frame)"}


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
                "sc_threshold": "0", "bf": "0", "forced-idr": "1"}
        if cfg.tune:
            opts["tune"] = cfg.tune
        if cfg.threads:
            opts["threads"] = str(cfg.threads)
    else:
        opts = {"b": f"{cfg.bitrate_kbps}k", "g": str(gop), "bf": "0"}
    return EncoderSettings(codec=codec, width=width, height=height, pix_fmt="yuv420p", fps=cfg.fps, gop=gop,
                           options=tuple(sorted(opts.items())))

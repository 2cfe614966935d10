"""Live rendition for officers: H.264 in fragmented MP4 (init segment, then one moof+mdat per frame).

Separate from the recorder's encoder, so a viewer never changes what is recorded as evidence. Here
PyAV's libx264 with ``tune=zerolatency`` (no B-frames, no lookahead: a frame in, a packet out); on a Pi
the same fragments come from picamera2's ``H264Encoder`` on the lores stream (hardware on a Pi 4,
libav on a Pi 5) fed through ``PyavOutput`` into this muxer — the wire format does not change.

The mp4 muxer (``frag_every_frame+empty_moov+default_base_moof``) writes ``ftyp+moov`` once and then a
``moof+mdat`` pair per frame, one frame late (it needs the next timestamp for the sample duration). We
split its output at top-level box boundaries, which is what Media Source Extensions wants.
"""

from __future__ import annotations

import contextlib
import struct
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from agent.core.errors import CaptureError
from agent.core.model import PixelFormat

_BOX = struct.Struct(">I4s")
TIME_BASE = Fraction(1, 90_000)


@dataclass(frozen=True)
class EncodedFrame:
    """One frame's ``moof+mdat`` bytes and the capture facts the sender signs with them."""

    data: bytes
    pts_us: int  # media time of the sample (microseconds), what the player reports as mediaTime
    wall_us: int  # capture time (wall clock)
    mono_us: int
    keyframe: bool


class _Sink:
    """Non-seekable file object the muxer writes into; collects complete top-level boxes."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.buf += data
        return len(data)

    def flush(self) -> None:
        pass

    def boxes(self) -> list[tuple[bytes, bytes]]:
        """Pop every complete (type, bytes) box at the head of the buffer."""
        out: list[tuple[bytes, bytes]] = []
        while len(self.buf) >= _BOX.size:
            size, kind = _BOX.unpack_from(self.buf)
            if size < _BOX.size:
                raise CaptureError(f"mp4 muxer wrote a box of size {size}")
            if len(self.buf) < size:
                break
            out.append((bytes(kind), bytes(self.buf[:size])))
            del self.buf[:size]
        return out


def fit_size(src_w: int, src_h: int, max_w: int, max_h: int) -> tuple[int, int]:
    """The largest even size within (max_w, max_h) that keeps the camera's aspect (never stretched, never
    enlarged: upscaling would only spend the uplink on pixels the camera did not see)."""
    scale = min(1.0, max_w / src_w, max_h / src_h)
    w = max(16, int(src_w * scale) // 2 * 2)
    h = max(16, int(src_h * scale) // 2 * 2)
    return w, h


class LiveEncoder:
    """Camera frames in, ``init`` plus one :class:`EncodedFrame` per frame out (PyAV libx264, zerolatency)."""

    def __init__(self, width: int, height: int, fps: float, bitrate_kbps: int, *, gop_s: float = 2.0,
                 preset: str = "ultrafast", threads: int = 2) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.bitrate_kbps = bitrate_kbps
        self._sink = _Sink()
        self._container: Any = av.open(self._sink, mode="w", format="mp4", options={
            "movflags": "frag_every_frame+empty_moov+default_base_moof"})
        gop = max(1, round(gop_s * fps))
        stream: Any = self._container.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.bit_rate = bitrate_kbps * 1000
        stream.gop_size = gop
        stream.options = {"preset": preset, "tune": "zerolatency", "forced-idr": "1",
                          "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:threads={threads}:"
                                         f"vbv-maxrate={bitrate_kbps}:vbv-bufsize={bitrate_kbps // 2}"}
        self._stream = stream
        self._pending: deque[tuple[int, int, int, bool]] = deque()  # frames muxed, not yet written
        self._init_parts: list[bytes] = []
        self.init: bytes | None = None
        self.codec = "avc1.42E01F"
        self._last_pts = -1
        self._t0_ns: int | None = None  # media time 0 = the first frame
        self._force_key = True
        self._closed = False

    def request_keyframe(self) -> None:
        """The next frame is an IDR frame (a viewer joined, or must resynchronise)."""
        self._force_key = True

    def set_bitrate(self, kbps: int) -> None:
        """x264 reconfigures on the fly (ffmpeg's libx264 wrapper re-reads bit_rate each frame)."""
        self.bitrate_kbps = kbps
        self._stream.codec_context.bit_rate = kbps * 1000
        with contextlib.suppress(AttributeError):  # older PyAV: the average target alone
            self._stream.codec_context.rc_max_rate = kbps * 1000

    def encode(self, image: npt.NDArray[np.uint8], wall_ns: int, mono_ns: int,
               fmt: PixelFormat = "bgr24") -> list[EncodedFrame]:
        """Encode one frame (I420 or BGR, any size: swscale brings it to the live size in the same pass as
        any colour conversion); returns the frames the muxer completed."""
        if self._closed:
            raise CaptureError("live encoder is closed")
        if self._t0_ns is None:
            self._t0_ns = mono_ns
        pts = max((mono_ns - self._t0_ns) * 9 // 100_000, self._last_pts + 1)
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        if frame.width != self.width or frame.height != self.height or fmt != "yuv420p":
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p", interpolation="AREA")
        frame.pts, frame.time_base = pts, TIME_BASE
        if self._force_key:
            frame.pict_type = av.video.frame.PictureType.I
            self._force_key = False
        out: list[EncodedFrame] = []
        for packet in self._stream.encode(frame):
            self._mux(packet, wall_ns, mono_ns, out)
        return out

    def _mux(self, packet: Any, wall_ns: int, mono_ns: int, out: list[EncodedFrame]) -> None:
        self._pending.append((int(packet.pts) * 100 // 9, wall_ns // 1000, mono_ns // 1000, bool(packet.is_keyframe)))
        self._container.mux(packet)
        self._collect(out)

    def _collect(self, out: list[EncodedFrame]) -> None:
        moof: bytes | None = None
        for kind, data in self._sink.boxes():
            if self.init is None and kind in (b"ftyp", b"moov"):
                self._init_parts.append(data)
                if kind == b"moov":
                    self.init = b"".join(self._init_parts)
                    self._set_codec()
            elif kind == b"moof":
                moof = data
            elif kind == b"mdat" and moof is not None:
                pts_us, wall_us, mono_us, key = self._pending.popleft()
                out.append(EncodedFrame(moof + data, pts_us, wall_us, mono_us, key))
                moof = None
        if moof is not None:  # a moof whose mdat has not been written yet: keep it for the next call
            self._sink.buf[:0] = moof

    def _set_codec(self) -> None:
        extra = self._stream.codec_context.extradata
        if extra and len(extra) >= 4 and extra[0] == 1:  # avcC: version, profile, compatibility, level
            self.codec = "avc1.{:02X}{:02X}{:02X}".format(*extra[1:4])

    def close(self) -> list[EncodedFrame]:
        """Flush the encoder and the muxer's last fragment; idempotent."""
        if self._closed:
            return []
        self._closed = True
        out: list[EncodedFrame] = []
        try:
            for packet in self._stream.encode(None):
                self._pending.append((int(packet.pts) * 100 // 9, 0, 0, bool(packet.is_keyframe)))
                self._container.mux(packet)
            self._container.close()
            self._collect(out)
        except (av.error.FFmpegError, ValueError) as exc:
            raise CaptureError(f"live encoder close failed: {exc}") from exc
        return out

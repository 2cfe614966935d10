"""One H.264 encoder kept across segments: I420 frames in, fragmented MP4 segment files out.

:meth:`H264Stream.start_segment` makes the next frame an IDR frame and the first of a new file;
packets come out of the encoder a few frames late (x264's lookahead), so a segment's file is complete
-- and handed to its ``on_closed`` callback -- when the first packet of the next segment arrives, or
when the stream is flushed. Each file's timestamps start at 0 at its first frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from agent.capture.pixels import i420
from agent.core.errors import CaptureError
from agent.core.model import Frame
from agent.video.encoder import TIME_BASE, EncoderSettings

_KEY = av.video.frame.PictureType.I


@dataclass
class SegmentFile:
    """One open fragmented MP4 file and the encoder time (pts) its first frame has."""

    path: Path
    start_pts: int
    on_closed: Callable[[SegmentFile], None]
    out: Any = None
    stream: Any = None
    packets: int = 0
    closed: bool = field(default=False)


class H264Stream:
    """The recording's encoder; frames must have the size it was made for (a new size needs a new stream)."""

    def __init__(self, enc: EncoderSettings) -> None:
        self.enc = enc
        try:
            ctx = av.CodecContext.create(enc.codec, "w")
            ctx.width, ctx.height, ctx.pix_fmt = enc.width, enc.height, enc.pix_fmt  # type: ignore[attr-defined]
            ctx.time_base = TIME_BASE
            ctx.framerate = Fraction(enc.fps).limit_denominator(1001)  # type: ignore[attr-defined]
            ctx.options = dict(enc.options)
            ctx.open()
        except (av.FFmpegError, ValueError) as exc:
            raise CaptureError(f"cannot open the {enc.codec} encoder at {enc.width}x{enc.height}: {exc}") from exc
        self._ctx: Any = ctx
        self._segments: list[SegmentFile] = []  # open, oldest first
        self._t0: int | None = None
        self._last_pts = -1
        self._key_next = True
        self._closed = False

    def start_segment(self, path: Path, on_closed: Callable[[SegmentFile], None]) -> SegmentFile:
        """The next frame opens a new file at ``path`` with an IDR frame."""
        seg = SegmentFile(path=path, start_pts=-1, on_closed=on_closed)
        try:
            # flush_packets: each finished fragment reaches the OS at once, so a kill -9 loses only the open one
            seg.out = av.open(str(path), "w", format="mp4",
                              options={"movflags": self.enc.movflags, "flush_packets": "1"})
            seg.stream = seg.out.add_mux_stream("h264", rate=Fraction(self.enc.fps).limit_denominator(1001),
                                                width=self.enc.width, height=self.enc.height)
            seg.stream.time_base = TIME_BASE
        except (av.FFmpegError, ValueError) as exc:
            raise CaptureError(f"cannot open segment {path}: {exc}") from exc
        self._segments.append(seg)
        self._key_next = True
        return seg

    def encode(self, frame: Frame) -> None:
        """Encode one frame into the newest segment (its first frame if just started)."""
        if self._closed:
            raise CaptureError("the video encoder is closed")
        if frame.width != self.enc.width or frame.height != self.enc.height:
            raise CaptureError(f"frame {frame.index} is {frame.width}x{frame.height}, "
                               f"the encoder is {self.enc.width}x{self.enc.height}")
        if not self._segments:
            raise CaptureError("no segment started for the video encoder")
        if self._t0 is None:
            self._t0 = frame.mono_ns
        pts = max(round((frame.mono_ns - self._t0) * 90_000 / 1e9), self._last_pts + 1)
        self._last_pts = pts
        vf = av.VideoFrame.from_ndarray(i420(frame), format="yuv420p")
        vf.pts, vf.time_base = pts, TIME_BASE
        if self._key_next:
            self._segments[-1].start_pts = pts
            vf.pict_type = _KEY
            self._key_next = False
        try:
            packets = self._ctx.encode(vf)
        except av.FFmpegError as exc:
            raise CaptureError(f"{self.enc.codec} failed on frame {frame.index}: {exc}") from exc
        for packet in packets:
            self._route(packet)

    def _route(self, packet: Any) -> None:
        pts = int(packet.pts)
        # the newest segment whose first frame is at or before this packet owns it; older ones are complete
        while len(self._segments) > 1 and 0 <= self._segments[1].start_pts <= pts:
            self._close_file(self._segments.pop(0))
        seg = self._segments[0]
        packet.pts -= seg.start_pts
        packet.dts = None if packet.dts is None else packet.dts - seg.start_pts
        packet.stream = seg.stream
        try:
            seg.out.mux(packet)
        except av.FFmpegError as exc:
            raise CaptureError(f"cannot write segment {seg.path}: {exc}") from exc
        seg.packets += 1

    def _close_file(self, seg: SegmentFile) -> None:
        if seg.closed:
            return
        seg.closed = True
        seg.out.close()
        seg.on_closed(seg)

    def close(self) -> None:
        """Flush the encoder and close every open segment file (each reported once); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._ctx.encode(None):
                self._route(packet)
        finally:
            while self._segments:
                self._close_file(self._segments.pop(0))

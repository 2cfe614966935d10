"""Files and network streams decoded by PyAV (FFmpeg), delivered as I420 without a colour conversion.

The same FFmpeg the encoders use, so the device process loads one copy of it (OpenCV's own copy is
only needed for V4L2 cameras: backend ``opencv``). Frames come at the source's own size (rounded down
to even, which I420 needs); times from the injected clock when a frame is returned, as for ``opencv``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np

from agent.capture.base import CaptureBackend, CaptureSettings, EndOfStream, Pacer
from agent.capture.sources import HINTS, OPEN_TIMEOUT_MS, classify_source, redact
from agent.core.clock import Clock
from agent.core.errors import CaptureError
from agent.core.model import Frame


class PyAVBackend(CaptureBackend):
    """Decodes a video file or an RTSP/HTTP stream; file replay in real time or as fast as possible, looped."""

    name: ClassVar[str] = "pyav"

    def __init__(self, settings: CaptureSettings, clock: Clock) -> None:
        super().__init__(settings, clock)
        self.kind, self.target = classify_source(settings.source)
        if self.kind == "device":
            raise CaptureError("backend \"pyav\" reads files and network streams; use backend \"opencv\" for "
                               f"the V4L2 camera {settings.source}")
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._index = 0
        self._file_index = 0
        self._pacer: Pacer | None = None
        self.source_fps: float = 0.0

    def describe(self) -> str:
        return f"pyav {self.kind} {redact(str(self.target))}"

    def _open(self) -> None:
        if self.kind == "file":
            path = Path(str(self.target))
            if not path.is_file():
                raise CaptureError(f"video file {path} does not exist or is not a file")
        options = {} if self.kind == "file" else {"timeout": str(OPEN_TIMEOUT_MS * 1000),
                                                   "rw_timeout": str(OPEN_TIMEOUT_MS * 1000)}
        try:
            self._container = av.open(str(self.target), "r", options=options, timeout=OPEN_TIMEOUT_MS / 1000)
            if not self._container.streams.video:
                raise CaptureError(f"{self.kind} capture source {redact(str(self.target))} has no video stream")
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._release()
            raise CaptureError(f"cannot open {self.kind} capture source {redact(str(self.target))}: "
                               f"{HINTS[self.kind]} ({redact(str(exc))})") from None
        stream = self._container.streams.video[0]
        # one decoding thread: a camera-rate stream does not need more, and each frame thread keeps its own
        # context and picture pool (about 20 MB more at 720p)
        stream.codec_context.thread_count = 1
        rate = float(stream.average_rate or stream.guessed_rate or 0.0)
        self.source_fps = rate if 0.5 <= rate <= 1000 else self.settings.fps
        self._frames = self._container.decode(stream)
        self._index = 0
        self._file_index = 0
        self._pacer = Pacer(self.source_fps)

    def _release(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._frames = None

    def _close(self) -> None:
        self._release()

    def _next_decoded(self) -> Any:
        assert self._frames is not None
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except av.FFmpegError as exc:
            if self.kind == "file" and self._index > 0:
                return None  # a truncated file ends at its last decodable frame
            raise CaptureError(f"{self.kind} capture source {redact(str(self.target))} failed: "
                               f"{redact(str(exc))}") from None

    def _read(self) -> Frame:
        if self.kind == "file" and self.settings.realtime and self._pacer is not None:
            self._pace(self._pacer)
        decoded = self._next_decoded()
        if decoded is None and self.kind == "file" and self.settings.loop and self._file_index > 0:
            self._container.seek(0)
            self._frames = self._container.decode(self._container.streams.video[0])
            self._file_index = 0
            decoded = self._next_decoded()
        if decoded is None:
            if self.kind == "file":
                if self._index == 0:
                    raise CaptureError(f"video file {self.target} has no decodable video frames")
                raise EndOfStream(f"end of video file {self.target} after {self._index} frames")
            raise CaptureError(f"{self.kind} capture source {redact(str(self.target))} stopped delivering frames")
        w, h = decoded.width // 2 * 2, decoded.height // 2 * 2
        if decoded.format.name != "yuv420p" or (w, h) != (decoded.width, decoded.height):
            decoded = decoded.reformat(width=w, height=h, format="yuv420p")
        image = np.asarray(decoded.to_ndarray(), dtype=np.uint8)
        wall, mono = self.clock.wall_ns(), self.clock.mono_ns()
        frame = Frame(image=image, index=self._index, wall_ns=wall, mono_ns=mono, fmt="yuv420p")
        self._index += 1
        self._file_index += 1
        return frame

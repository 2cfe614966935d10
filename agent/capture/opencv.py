"""cv2.VideoCapture behind the backend interface: V4L2 cameras, RTSP/HTTP streams, video files.

Frames are delivered at the source's own size: for files and streams the evidence is the
source's pixels, so nothing is resized here. Times come from the injected clock at the moment
a frame is returned (OpenCV's own timestamps are per-backend and not comparable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import cv2

from agent.capture.base import CaptureBackend, CaptureSettings, EndOfStream, Pacer
from agent.capture.sources import HINTS, OPEN_TIMEOUT_MS, READ_TIMEOUT_MS, classify_source, redact
from agent.core.clock import Clock
from agent.core.errors import CaptureError
from agent.core.model import Frame


class OpenCVBackend(CaptureBackend):
    """Reads frames with OpenCV; file replay can run in real time or as fast as possible, and loop."""

    name: ClassVar[str] = "opencv"

    def __init__(self, settings: CaptureSettings, clock: Clock) -> None:
        super().__init__(settings, clock)
        self.kind, self.target = classify_source(settings.source)
        self._cap: Any = None
        self._index = 0
        self._file_index = 0  # frames read since the file (re)started
        self._pacer: Pacer | None = None
        self.source_fps: float = 0.0

    def describe(self) -> str:
        return f"opencv {self.kind} {self._redacted()}"

    def _redacted(self) -> str:
        return redact(str(self.target))

    def _open(self) -> None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        if self.kind == "file":
            path = Path(str(self.target))
            if not path.is_file():
                raise CaptureError(f"video file {path} does not exist or is not a file")
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        elif self.kind == "url":
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(int(self.target), cv2.CAP_V4L2)
            if cap.isOpened():
                s = self.settings
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, s.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, s.height)
                cap.set(cv2.CAP_PROP_FPS, s.fps)
        if not cap.isOpened():
            cap.release()
            where = f"/dev/video{self.target}" if self.kind == "device" else self._redacted()
            raise CaptureError(f"cannot open {self.kind} capture source {where}: {HINTS[self.kind]}")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.source_fps = fps if 0.5 <= fps <= 1000 else self.settings.fps
        self._cap = cap
        self._index = 0
        self._file_index = 0
        self._pacer = Pacer(self.source_fps)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _read(self) -> Frame:
        assert self._cap is not None
        if self.kind == "file" and self.settings.realtime and self._pacer is not None:
            self._pace(self._pacer)
        ok, image = self._cap.read()
        if not ok and self.kind == "file" and self.settings.loop and self._file_index > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._file_index = 0
            ok, image = self._cap.read()
        if not ok or image is None:
            if self.kind == "file":
                if self._index == 0:
                    raise CaptureError(f"video file {self.target} has no decodable video frames")
                raise EndOfStream(f"end of video file {self.target} after {self._index} frames")
            raise CaptureError(f"{self.kind} capture source {self._redacted()} stopped delivering frames")
        if image.ndim == 2:  # grey cameras: keep the Frame contract (BGR)
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        wall, mono = self.clock.wall_ns(), self.clock.mono_ns()
        frame = Frame(image=image, index=self._index, wall_ns=wall, mono_ns=mono)
        self._index += 1
        self._file_index += 1
        return frame

"""Raspberry Pi camera (libcamera) through picamera2, imported only when this backend opens.

picamera2 is not on PyPI in a usable form for the Pi: it comes from Raspberry Pi OS
(``apt install python3-picamera2``) and a virtual environment must be created with
``--system-site-packages`` to see it. Off a Pi, opening this backend raises a clear
CaptureError instead of an ImportError deep in a stack.

This module is the minimal frame path (main stream -> Frame, times from ``SensorTimestamp``).
Native H.264, lores stream and full-resolution stills while recording belong to the full
backend (issue 6 item 1) and will add "h264"/"still" to ``capabilities`` when they exist.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from agent.capture.base import CaptureBackend, CaptureSettings
from agent.clock import Clock
from agent.errors import CaptureError
from agent.model import Frame

UNAVAILABLE_HINT = (
    "install it with `sudo apt install python3-picamera2` on Raspberry Pi OS (bookworm) and create the "
    "virtual environment with `python3 -m venv --system-site-packages`, or choose the opencv/synthetic backend"
)


def import_picamera2() -> Any:
    """The picamera2 module, or CaptureError saying how to get it."""
    try:
        return importlib.import_module("picamera2")
    except ImportError as exc:
        raise CaptureError(f"picamera2 is not available on this machine ({exc}); {UNAVAILABLE_HINT}") from None


def frame_times(metadata: dict[str, Any], wall_now: int, mono_now: int) -> tuple[int, int]:
    """(mono_ns, wall_ns) of a frame from libcamera's metadata.

    ``SensorTimestamp`` is CLOCK_MONOTONIC (ns) at the end of exposure; ``FrameWallClock`` (newer
    libcamera) is the matching wall time. Without it the wall time is derived from the monotonic age of
    the frame; implausible values (in the future) fall back to the time of reading.
    """
    sensor_ns = metadata.get("SensorTimestamp")
    if not (isinstance(sensor_ns, int) and 0 < sensor_ns <= mono_now):
        return mono_now, wall_now
    wall_clock = metadata.get("FrameWallClock")
    if isinstance(wall_clock, int) and 0 < wall_clock <= wall_now + 1_000_000_000:
        return sensor_ns, wall_clock
    return sensor_ns, wall_now - (mono_now - sensor_ns)


class Picamera2Backend(CaptureBackend):
    """Main stream as BGR frames (picamera2 "RGB888" is B,G,R in memory, as OpenCV expects)."""

    name: ClassVar[str] = "picamera2"
    capabilities: ClassVar[frozenset[str]] = frozenset({"sensor_timestamps"})

    def __init__(self, settings: CaptureSettings, clock: Clock, camera_num: int = 0) -> None:
        super().__init__(settings, clock)
        self.camera_num = camera_num
        self._cam: Any = None
        self._index = 0

    def describe(self) -> str:
        s = self.settings
        return f"picamera2 camera {self.camera_num} {s.width}x{s.height}@{s.fps:g}"

    def _open(self) -> None:
        module = import_picamera2()
        cameras = module.Picamera2.global_camera_info()
        if not cameras or self.camera_num >= len(cameras):
            raise CaptureError(
                f"no camera {self.camera_num} found by libcamera ({len(cameras or [])} detected); "
                "check the ribbon cable and camera_auto_detect=1 in config.txt"
            )
        s = self.settings
        cam = module.Picamera2(self.camera_num)
        try:
            config = cam.create_video_configuration(
                main={"size": (s.width, s.height), "format": "RGB888"},
                controls={"FrameRate": float(s.fps)},
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:
            cam.close()
            raise CaptureError(f"picamera2 camera {self.camera_num} could not start: {exc}") from exc
        self._cam = cam
        self._index = 0

    def _close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None

    def _read(self) -> Frame:
        assert self._cam is not None
        try:
            request = self._cam.capture_request()
        except Exception as exc:
            raise CaptureError(f"picamera2 camera {self.camera_num} stopped delivering frames: {exc}") from exc
        try:
            image = request.make_array("main")
            metadata = request.get_metadata()
        finally:
            request.release()  # hold requests briefly or libcamera drops frames
        mono, wall = frame_times(metadata, self.clock.wall_ns(), self.clock.mono_ns())
        image = image[:, :, :3] if image.ndim == 3 and image.shape[2] == 4 else image
        frame = Frame(image=image, index=self._index, wall_ns=wall, mono_ns=mono)
        self._index += 1
        return frame

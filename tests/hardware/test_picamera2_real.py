"""On a Raspberry Pi with a camera: the real picamera2 delivers timed frames. Skips cleanly elsewhere."""

from __future__ import annotations

import itertools

import pytest

from agent.capture.base import CaptureSettings
from agent.clock import SystemClock

picamera2 = pytest.importorskip("picamera2", reason="picamera2 is only on Raspberry Pi OS (python3-picamera2)")
pytestmark = pytest.mark.hardware


def test_real_camera_delivers_frames_with_sensor_times() -> None:
    if not picamera2.Picamera2.global_camera_info():
        pytest.skip("no camera detected by libcamera")
    from agent.capture.picamera2 import Picamera2Backend

    cam = Picamera2Backend(CaptureSettings(width=640, height=480, fps=10), SystemClock())
    with cam:
        frames = [cam.read() for _ in range(10)]
    assert frames[-1].image.shape[:2] == (480, 640)
    assert all(b.mono_ns > a.mono_ns for a, b in itertools.pairwise(frames))

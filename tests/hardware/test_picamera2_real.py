"""On a Raspberry Pi with a camera: the real picamera2 delivers timed frames. Skips cleanly elsewhere."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from agent.capture.base import CaptureSettings
from agent.core.clock import SystemClock

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


def test_real_camera_records_native_h264_segments_and_stills(tmp_path: Path) -> None:
    """Main stream -> H264Encoder (bcm2835 on a Pi 4, libav on a Pi 5) -> split fMP4 segments."""
    if not picamera2.Picamera2.global_camera_info():
        pytest.skip("no camera detected by libcamera")
    from agent.capture.picamera2 import Picamera2Config
    from agent.core.model import NO_GPS, Moment, TimeQuality
    from agent.video.picamera2_recorder import Picamera2Recorder
    from agent.video.recorder import ClosedSegment
    from agent.video.settings import AnalyticsConfig, VideoConfig
    from tests.support.media import ffprobe

    clock = SystemClock()

    class Sensors:
        def moment(self) -> Moment:
            return Moment(clock.wall_ns(), clock.mono_ns(), NO_GPS, TimeQuality("unsynced", False))

    counter = itertools.count()
    segments: list[ClosedSegment] = []
    cfg = VideoConfig(segment_seconds=1, fragment_seconds=0.5, fps=10, analytics=AnalyticsConfig(enabled=False))
    rec = Picamera2Recorder(cfg, settings=CaptureSettings(width=640, height=480, fps=10), clock=clock,
                            staging=lambda ext: tmp_path / f"{next(counter)}.{ext}", sensors=Sensors(),
                            on_segment=segments.append, pi=Picamera2Config())
    lores = rec.lores_backend()
    with lores:
        frames = [lores.read() for _ in range(25)]
        still = rec.capture_still()
    rec.close()
    assert frames[0].image.shape == (240, 320, 3) and still[:2] == b"\xff\xd8"
    assert len(segments) >= 2
    for seg in segments:
        probe = ffprobe(seg.path)
        assert probe["codec"] == "h264" and abs(probe["frames"] - seg.frame_count) <= 1

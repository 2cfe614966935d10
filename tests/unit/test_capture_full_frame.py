"""``CaptureBackend.full_frame``: a document still at the source's full native size, per backend."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from pydantic import ValidationError

from agent.capture import CaptureSettings, open_backend
from agent.capture.picamera2 import Picamera2Config, full_sensor_fps
from agent.capture.settings import CaptureConfig
from agent.core.clock import ManualClock, SystemClock
from agent.core.errors import CaptureError


def test_synthetic_draws_the_latest_scene_at_its_sensor_size() -> None:
    settings = CaptureSettings(width=320, height=180, realtime=False, sensor_width=1920, sensor_height=1080)
    with open_backend("synthetic", settings, ManualClock()) as cam:
        latest = cam.read()
        full = cam.full_frame(latest)
        assert full is not None and (full.width, full.height) == (1920, 1080) == cam.sensor_size()
        assert (full.index, full.wall_ns, full.mono_ns) == (latest.index, latest.wall_ns, latest.mono_ns)
        assert (latest.width, latest.height) == (320, 180)  # the stream is untouched
    with open_backend("synthetic", CaptureSettings(width=320, height=180, realtime=False), ManualClock()) as cam:
        latest = cam.read()
        assert cam.full_frame(latest) is latest and cam.sensor_size() is None  # no sensor: the stream is native


@pytest.mark.parametrize("sensor", [(1920, None), (None, 1080), (160, 90)])
def test_a_sensor_is_given_whole_and_at_least_the_stream(sensor: tuple[int | None, int | None]) -> None:
    with pytest.raises(CaptureError, match="sensor size"):
        CaptureSettings(width=320, height=180, sensor_width=sensor[0], sensor_height=sensor[1])
    with pytest.raises(ValidationError, match="sensor"):
        CaptureConfig(width=320, height=180, sensor_width=sensor[0], sensor_height=sensor[1])


def test_pyav_file_gives_its_native_size_whatever_the_stream_asks(tmp_path: Path) -> None:
    path = tmp_path / "wide.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((360, 640, 3), 40 * i, np.uint8),
                                                             format="bgr24")))
        out.mux(stream.encode(None))
    with open_backend("pyav", CaptureSettings(source=str(path), width=320, height=180, realtime=False),
                      SystemClock()) as cam:
        latest = cam.read()
        full = cam.full_frame(latest)
    assert full is latest and (full.width, full.height) == (640, 360)


def test_picamera2_without_document_stills_says_how_to_get_the_full_sensor(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import picamera2_fake as fake

    fake.install(monkeypatch)
    with open_backend("picamera2", CaptureSettings(width=640, height=360, fps=10), SystemClock()) as cam:
        assert cam.sensor_size() == (4608, 2592)
        with pytest.raises(CaptureError, match="document_stills = true"):
            cam.full_frame(cam.read())


def test_fake_picamera2_keeps_the_isp_and_sensor_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import picamera2_fake as fake

    fake.install(monkeypatch)
    cam = fake.Picamera2(0)
    assert cam.camera_properties["PixelArraySize"] == cam.sensor_resolution == (4608, 2592)
    assert full_sensor_fps(cam, (4608, 2592)) == 14.35 and full_sensor_fps(cam, (1280, 720)) == 120.13
    with pytest.raises(RuntimeError, match="lores stream dimensions may not exceed main stream"):
        cam.configure(cam.create_video_configuration(main={"size": (640, 360)}, lores={"size": (1280, 720)}))
    with pytest.raises(RuntimeError, match="lores stream must be YUV"):
        cam.configure(cam.create_video_configuration(main={"size": (640, 360)},
                                                     lores={"size": (320, 180), "format": "RGB888"}))


def test_document_stills_refuses_a_frame_rate_the_full_sensor_mode_cannot_give(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.video.picamera2_recorder import Picamera2Recorder
    from agent.video.settings import VideoConfig
    from tests.support import picamera2_fake as fake

    fake.install(monkeypatch)
    rec = Picamera2Recorder(VideoConfig(), settings=CaptureSettings(width=1280, height=720, fps=30),
                            clock=SystemClock(), staging=lambda ext: tmp_path / f"x.{ext}", sensors=None,  # type: ignore[arg-type]
                            on_segment=lambda _s: None, pi=Picamera2Config(document_stills=True))
    with pytest.raises(CaptureError, match=r"14\.35 fps at most; capture.fps 30 is higher"):
        rec.start()

"""Digital zoom on picamera2 (the fake, faithful to ScalerCrop): within the control's limits, applied a few frames
later, and the lores frames and the full-size stills show exactly the region the metadata reports."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from agent.capture import CaptureSettings
from agent.capture.picamera2 import crop_limits, scaler_crop
from agent.core.clock import SystemClock
from agent.core.model import Frame, GpsReading, Moment, TimeQuality
from agent.core.view import ViewRegion
from agent.device.pipeline import FrameHub
from agent.device.sealer import Sealer
from agent.device.zoom_part import ViewZoom
from agent.video.picamera2_recorder import Picamera2Recorder
from agent.video.settings import AnalyticsConfig, VideoConfig
from agent.wire.zoom import ZoomArgs
from tests.support import picamera2_fake as fake

FPS = 20.0
SENSOR = (4608, 2592)


@pytest.fixture
def camera(monkeypatch: pytest.MonkeyPatch) -> type[fake.Picamera2]:
    fake.install(monkeypatch)
    return fake.Picamera2


class Sensors:
    def moment(self) -> Moment:
        clock = SystemClock()
        return Moment(clock.wall_ns(), clock.mono_ns(), GpsReading(None, "no fix"), TimeQuality("ntp", True))


def _drawn(frame: Frame, size: tuple[int, int], crop: tuple[int, int, int, int], upto: int) -> bool:
    """The frame's pixels are the fake sensor's picture of ``crop`` (for one of its frame numbers)."""
    view = None if crop == (0, 0, *SENSOR) else (crop[0] / SENSOR[0], crop[1] / SENSOR[1],
                                                   crop[2] / SENSOR[0], crop[3] / SENSOR[1])
    return any(np.array_equal(frame.image, fake._pattern(n, size, "YUV420", view)) for n in range(upto + 1))


def test_scaler_crop_keeps_within_the_control_limits(camera: type[fake.Picamera2],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cam = fake.Picamera2(0)
    cam.configure(cam.create_video_configuration(main={"size": (640, 480), "format": "YUV420"}))
    _low, maximum, default = crop_limits(cam)
    assert maximum == (0, 0, 4608, 2592) and default == (576, 0, 3456, 2592)  # 4:3 stream: centred 4:3 crop
    assert scaler_crop(ViewRegion(), cam) == default
    x, y, w, h = scaler_crop(ViewRegion.centred(0.5, 0.5, 8.0), cam)
    assert (w, h) == (432, 324) and (x + w / 2, y + h / 2) == (2304, 1296)
    monkeypatch.setattr(fake.Picamera2, "CROP_MIN", (0, 0, 1000, 1000))  # an ISP that cannot go that small
    x, y, w, h = scaler_crop(ViewRegion.centred(1 / 16, 1 / 16, 8.0), cam)  # 8x in the top-left corner
    assert w >= 1000 and h >= 1000 and abs(w / h - 4 / 3) < 0.01  # enlarged, aspect kept
    assert x >= 0 and y >= 0 and x + w <= 4608 and y + h <= 2592  # still inside the sensor
    cam.close()


def test_zoom_reaches_lores_frames_and_stills_through_scaler_crop(camera: type[fake.Picamera2],
                                                                   sealer: Sealer, tmp_path: Any) -> None:
    counter = iter(range(1000))
    cfg = VideoConfig(segment_seconds=60, fragment_seconds=0.5, fps=FPS, analytics=AnalyticsConfig(enabled=False))
    rec = Picamera2Recorder(cfg, settings=CaptureSettings(width=128, height=72, fps=FPS), clock=SystemClock(),
                            staging=lambda ext: tmp_path / f"s{next(counter)}.{ext}", sensors=Sensors(),
                            on_segment=lambda seg: None, on_still=lambda shot: None,
                            pi=fake_pi())
    hub = FrameHub(rec.lores_backend())
    zoom = ViewZoom(lambda: hub.camera, lambda extra: sealer.seal("event", Sensors().moment(), extra=extra),
                    lambda: ["session"], lambda: (64, 36))
    hub.transform = zoom.transform
    sub = hub.subscribe("test", maxsize=500)
    hub.start()
    try:
        inner = camera.instances[-1]
        assert wait_frame(sub, lambda f: True).view is None
        request = SimpleNamespace(officer="officer-alice", key_id="k" * 64, wire={"body": {"command": "view.zoom"}})
        asked_at = inner.sequence
        result = zoom.handle(request, ZoomArgs(cx=0.25, cy=0.5, factor=2.0))  # type: ignore[arg-type]
        crop = (0, 648, 2304, 1296)
        assert inner.crop_requests == [crop] and result["pixels"]["space"] == "sensor"
        assert (result["pixels"]["x"], result["pixels"]["y"], result["pixels"]["w"], result["pixels"]["h"]) == crop
        zoomed = wait_frame(sub, lambda f: f.view is not None)
        assert zoomed.sensor is not None and zoomed.sensor.scaler_crop == crop
        assert zoomed.view is not None and zoomed.view.same(ViewRegion(0, 0.25, 0.5, 0.5))
        assert inner.sequence - asked_at >= fake.Picamera2.CONTROL_DELAY_FRAMES  # a few frames later, as libcamera
        assert _drawn(zoomed, (96, 54), crop, inner.sequence)  # the lores stream shows the region
        still = rec.still_frame()
        assert (still.width, still.height) == (128, 72) and still.sensor is not None
        assert still.sensor.scaler_crop == crop and _drawn(still, (128, 72), crop, inner.sequence)  # stills too
        zoom.reset("live_ended")
        assert inner.crop_requests[-1] == (0, 0, *SENSOR)
        back = wait_frame(sub, lambda f: f.view is None)
        assert back.sensor is not None and back.sensor.scaler_crop == (0, 0, *SENSOR)
    finally:
        hub.close()
        rec.close()
    reasons = [e["reason"] for e in events(sealer)]
    assert reasons == ["officer", "live_ended"]


def fake_pi() -> Any:
    from agent.capture.picamera2 import Picamera2Config

    return Picamera2Config(lores_width=96, lores_height=54)


def wait_frame(sub: Any, cond: Any, timeout: float = 30.0) -> Frame:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sub.get(timeout=1.0)
        if frame is not None and cond(frame):
            return frame  # type: ignore[no-any-return]
    raise AssertionError("no such frame in time")


def events(sealer: Sealer) -> list[dict[str, Any]]:
    from agent.customs.inspection.evidence import load_items

    return [it.extra for it in load_items(sealer.vault.path, 0) if it.kind == "event"]

"""picamera2 backend off a Pi: a clear error; with a minimal stand-in module, the frame path."""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar

import numpy as np
import pytest

from agent.capture import CaptureSettings, open_backend
from agent.core.clock import ManualClock
from agent.core.errors import CaptureError


def test_missing_picamera2_is_a_clear_capture_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails even on a Pi
    with pytest.raises(CaptureError, match="picamera2 is not available on this machine") as info:
        open_backend("picamera2", CaptureSettings(), ManualClock())
    assert "python3-picamera2" in str(info.value) and "--system-site-packages" in str(info.value)


class _Request:
    def __init__(self, ts: int, shape: tuple[int, int]) -> None:
        self.ts, self.shape, self.released = ts, shape, False

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main"
        return np.zeros((*self.shape, 4), np.uint8)  # XRGB-like: the backend drops the 4th channel

    def get_metadata(self) -> dict[str, Any]:
        return {"SensorTimestamp": self.ts}

    def release(self) -> None:
        self.released = True


class _Picamera2:
    """Only the calls the minimal backend makes (picamera2 0.3.x names)."""

    cameras: ClassVar[list[dict[str, Any]]] = [{"Model": "imx708"}]

    def __init__(self, camera_num: int = 0) -> None:
        self.calls: list[str] = []
        self.size = (0, 0)

    @classmethod
    def global_camera_info(cls) -> list[dict[str, Any]]:
        return cls.cameras

    def create_video_configuration(self, main: dict[str, Any], controls: dict[str, Any]) -> dict[str, Any]:
        self.size = main["size"]
        return {"main": main, "controls": controls}

    def configure(self, config: dict[str, Any]) -> None:
        self.calls.append("configure")

    def start(self) -> None:
        self.calls.append("start")

    def capture_request(self) -> _Request:
        return _Request(ts=900_000_000, shape=(self.size[1], self.size[0]))

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def test_frame_times_come_from_sensor_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=_Picamera2))
    clock = ManualClock(wall=2_000_000_000_000_000_000, mono=1_000_000_000)
    with open_backend("picamera2", CaptureSettings(width=32, height=24), clock) as cam:
        frame = cam.read()
        inner = cam._cam  # type: ignore[attr-defined]
    assert frame.image.shape == (24, 32, 3)
    assert frame.mono_ns == 900_000_000
    assert frame.wall_ns == 2_000_000_000_000_000_000 - 100_000_000
    assert inner.calls == ["configure", "start", "stop", "close"]


def test_no_camera_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoCam(_Picamera2):
        cameras: ClassVar[list[dict[str, Any]]] = []

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=NoCam))
    with pytest.raises(CaptureError, match="no camera 0 found"):
        open_backend("picamera2", CaptureSettings(), ManualClock())


def test_frame_times_from_libcamera_metadata() -> None:
    from agent.capture.picamera2 import frame_times

    wall_now, mono_now = 1_800_000_000_000_000_000, 50_000_000_000
    # SensorTimestamp 30 ms ago, no FrameWallClock: wall derived from the frame's monotonic age
    assert frame_times({"SensorTimestamp": mono_now - 30_000_000}, wall_now, mono_now) == (
        mono_now - 30_000_000, wall_now - 30_000_000)
    # FrameWallClock (newer libcamera) is used as is
    assert frame_times({"SensorTimestamp": mono_now - 1, "FrameWallClock": wall_now - 5}, wall_now, mono_now) == (
        mono_now - 1, wall_now - 5)
    # a sensor time in the future is not trusted
    assert frame_times({"SensorTimestamp": mono_now + 10}, wall_now, mono_now) == (mono_now, wall_now)


def test_sensor_meta_takes_the_exposure_counters_and_refuses_odd_values() -> None:
    from agent.capture.picamera2 import sensor_meta
    from agent.core.model import SensorMeta

    assert sensor_meta({"SensorTimestamp": 5_000_000, "SensorSequence": 42, "FrameDuration": 33_333}) == \
        SensorMeta(5_000_000, 42, 33_333)
    assert sensor_meta({}) == SensorMeta()
    assert sensor_meta({"SensorTimestamp": -1, "SensorSequence": "7", "FrameDuration": True}) == SensorMeta()

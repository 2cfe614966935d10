"""picamera2 backend and native-H.264 recorder against the fake picamera2 (0.3.x API, tests/fakes).

The fake runs a real camera thread and real libx264/PyAV muxing, so the segment files are checked
with ffprobe; frame times are checked exactly against the fake sensor's metadata.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.capture import CaptureSettings, open_backend
from agent.capture.picamera2 import Picamera2Config, request_times
from agent.core.model import GpsFix, GpsReading, Moment, TimeQuality
from agent.device.pipeline import FrameHub
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.verify import check
from agent.video.picamera2_recorder import Picamera2Recorder
from agent.video.recorder import ClosedSegment, StillShot
from agent.video.sealing import MediaSealer
from agent.video.settings import AnalyticsConfig, C2paConfig, VideoConfig
from agent.video.verify_segments import segment_checker
from tests.support import picamera2_fake as fake
from tests.support.media import ffprobe

FPS = 20.0
OFFSET = time.time_ns() - time.monotonic_ns()  # wall = mono + OFFSET on the test clock (fixed)


class OffsetClock:
    """Real monotonic time (the fake sensor's clock) with a fixed, known wall offset."""

    def mono_ns(self) -> int:
        return time.monotonic_ns()

    def wall_ns(self) -> int:
        return time.monotonic_ns() + OFFSET


def near(a: int, b: int) -> bool:
    """Equal but for the few µs between the test clock's two reads (wall, then mono)."""
    return abs(a - b) < 5_000_000


class Sensors:
    def __init__(self) -> None:
        self.clock = OffsetClock()

    def moment(self) -> Moment:
        fix = GpsFix(lat=31.23, lon=121.47, mode=3, fix_time="2026-11-22T09:00:00Z")
        return Moment(self.clock.wall_ns(), self.clock.mono_ns(), GpsReading(fix), TimeQuality("ntp", True))


@pytest.fixture
def camera(monkeypatch: pytest.MonkeyPatch) -> type[fake.Picamera2]:
    fake.install(monkeypatch)
    monkeypatch.setattr(fake.Picamera2, "frame_wall_clock", True)
    return fake.Picamera2


def packets(path: Path) -> list[str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=flags",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return [p["flags"] for p in json.loads(out)["packets"]]


def test_request_times_prefer_frame_wall_clock_else_derive_from_the_clock() -> None:
    clock = OffsetClock()
    mono = time.monotonic_ns() - 5_000_000
    wall_clock = time.time_ns() - 5_000_000
    assert request_times({"SensorTimestamp": mono, "FrameWallClock": wall_clock}, clock) == (mono, wall_clock)
    got, wall = request_times({"SensorTimestamp": mono}, clock)
    assert got == mono and near(wall, mono + OFFSET)  # derived through the clock's wall-mono offset
    later, wall = request_times({"SensorTimestamp": mono + 10**12}, clock)  # from the future: not a sensor time
    assert later != mono + 10**12 and near(wall, later + OFFSET)
    for bad in (17, wall_clock + 10**12):  # not epoch ns / ahead of now: derived instead
        got, wall = request_times({"SensorTimestamp": mono, "FrameWallClock": bad}, clock)
        assert got == mono and near(wall, mono + OFFSET)


def test_main_frames_sensor_times_and_still_while_streaming(camera: type[fake.Picamera2],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake.Picamera2, "frame_wall_clock", False)
    with open_backend("picamera2", CaptureSettings(width=96, height=64, fps=FPS), OffsetClock()) as cam:
        frames = [cam.read() for _ in range(4)]
        jpg = cam.capture_still(quality=80)
        frames.append(cam.read())
        inner = camera.instances[-1]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert all(f.image.shape == (64, 96, 3) for f in frames)
    assert all(near(f.wall_ns, f.mono_ns + OFFSET) for f in frames)  # no FrameWallClock: derived
    assert all(b > a for a, b in itertools.pairwise([f.mono_ns for f in frames]))
    assert jpg[:2] == b"\xff\xd8"
    assert inner.outstanding == 0 and inner.closed  # every request released, camera closed


def test_lores_frames_use_frame_wall_clock(camera: type[fake.Picamera2]) -> None:
    from agent.capture.picamera2 import Picamera2Backend

    cam = Picamera2Backend(CaptureSettings(width=128, height=96, fps=FPS), OffsetClock(), stream="lores",
                           lores_size=(64, 48))
    with cam:
        frame = cam.read()
    assert (frame.fmt, frame.image.shape) == ("yuv420p", (72, 64))  # the lores YUV420 as it is: I420
    assert frame.wall_ns != frame.mono_ns + OFFSET and abs(frame.wall_ns - time.time_ns()) < 10**10


def record(camera: type[fake.Picamera2], tmp_path: Path, seconds: float, **kw: Any) -> tuple[
        Picamera2Recorder, list[ClosedSegment], list[StillShot]]:
    segments: list[ClosedSegment] = []
    stills: list[StillShot] = []
    counter = iter(range(1000))

    def staging(ext: str) -> Path:
        return tmp_path / f"staging-{next(counter)}.{ext}"

    cfg = VideoConfig(segment_seconds=1, fragment_seconds=0.5, fps=FPS, analytics=AnalyticsConfig(enabled=False))
    rec = Picamera2Recorder(cfg, settings=CaptureSettings(width=128, height=96, fps=FPS), clock=OffsetClock(),
                            staging=kw.pop("staging", staging), sensors=Sensors(),
                            on_segment=kw.pop("on_segment", segments.append),
                            on_still=kw.pop("on_still", stills.append),
                            pi=Picamera2Config(lores_width=64, lores_height=48), **kw)
    return rec, segments, stills


def test_recorder_splits_at_keyframes_into_closed_segments(camera: type[fake.Picamera2], tmp_path: Path) -> None:
    rec, segments, stills = record(camera, tmp_path, 2.6)
    hub = FrameHub(rec.lores_backend())
    sub = hub.subscribe("analytics", maxsize=200)
    hub.start()  # opening the lores backend starts recording
    time.sleep(1.3)
    rec.request_still("request", {"officer": "A1"})  # full-size still while H.264 keeps flowing
    time.sleep(1.3)
    rec.close()
    rec.close()
    hub.close()
    lores = [f for f in list(sub.frames.queue) if f is not None]
    inner = camera.instances[-1]
    assert inner.outstanding == 0 and inner.closed and inner.dropped == 0

    assert len(segments) >= 3 and [s.segment_no for s in segments] == list(range(len(segments)))
    first_index = 0
    for seg in segments:
        assert seg.path.exists() and seg.first_index == first_index
        first_index += seg.frame_count
        probe = ffprobe(seg.path)
        assert probe["codec"] == "h264" and (probe["width"], abs(probe["frames"] - seg.frame_count)) <= (128, 1)
        flags = packets(seg.path)
        assert len(flags) == seg.frame_count and flags[0].startswith("K")  # every segment opens on a keyframe
        assert seg.start.mono_ns == seg.frame_mono_ns[0] and seg.end.mono_ns == seg.frame_mono_ns[-1]
        assert seg.encoder.codec.startswith("libx264") and seg.encoder.gop == 10
        assert seg.gps_track and seg.gps_track[0].mono_ns == seg.frame_mono_ns[0]
    for full in segments[:-1]:
        assert full.frame_count == 20  # split exactly at the keyframe after segment_seconds
    # frames continue across files without a gap: next segment starts one frame period later
    for a, b in itertools.pairwise(segments):
        assert 0 < b.frame_mono_ns[0] - a.frame_mono_ns[-1] < 2 * a.nominal_frame_ns
    sensor_walls = {f.mono_ns: f.wall_ns for f in lores}
    matched = [(m, w) for s in segments for m, w in zip(s.frame_mono_ns, s.frame_wall_ns, strict=True)
               if m in sensor_walls]
    assert matched and all(sensor_walls[m] == w for m, w in matched)  # same FrameWallClock as the lores frames
    assert lores and (lores[0].height, lores[0].width, lores[0].fmt) == (48, 64, "yuv420p")
    assert len(stills) == 1 and (stills[0].frame.height, stills[0].frame.width) == (96, 128)
    assert stills[0].moment.mono_ns == stills[0].frame.mono_ns and stills[0].extra == (("officer", "A1"),)


def test_picamera2_segments_seal_and_verify_like_pyav_ones(camera: type[fake.Picamera2], vault: Vault,
                                                           sealer: Sealer) -> None:
    sensors = Sensors()
    sealer.start(sensors.moment())
    cfg = VideoConfig(segment_seconds=1, fragment_seconds=0.5, fps=FPS, analytics=AnalyticsConfig(enabled=False),
                      c2pa=C2paConfig(enabled=False))
    media = MediaSealer(sealer, cfg, staging=vault.staging_path, sensors=sensors)
    media.start()
    rec, _segments, _stills = record(camera, vault.path, 0, staging=vault.staging_path, on_segment=media.submit,
                                     on_still=media.submit)
    rec.start()
    done = threading.Event()
    done.wait(1.6)
    shot = rec.request_still()
    rec.close()
    media.close()
    assert media.stats.errors == [] and media.stats.segments >= 2
    assert shot.result(timeout=5).kind == "still"
    report = check(vault.path, checkers=[segment_checker()])
    summary = report.sections["segments"]
    assert len(summary) == media.stats.segments and summary[0]["frames"] == 20
    assert not [p for p in report.problems if "monotonic capture time runs backwards" not in p["problem"]]
    assert not any((vault.path / "staging").iterdir())


def test_no_camera_and_missing_picamera2_are_capture_errors(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    from agent.core.errors import CaptureError

    fake.install(monkeypatch)
    monkeypatch.setattr(fake.Picamera2, "cameras", [])
    rec, _, _ = record(fake.Picamera2, tmp_path, 0)
    with pytest.raises(CaptureError, match="no camera 0 found"):
        rec.start()
    rec.close()
    import sys

    monkeypatch.setitem(sys.modules, "picamera2", None)
    rec, _, _ = record(fake.Picamera2, tmp_path, 0)
    with pytest.raises(CaptureError, match="python3-picamera2"):
        rec.start()

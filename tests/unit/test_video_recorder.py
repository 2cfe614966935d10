"""Recorder: fragmented-MP4 H.264 segments checked with ffprobe, stills from the same frames, GPS track."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.core.clock import ManualClock
from agent.core.errors import CaptureError
from agent.core.model import Frame, GpsFix, GpsReading, Moment, TimeQuality
from agent.video.encoder import choose_encoder, encoder_settings
from agent.video.recorder import ClosedSegment, Recorder, StillShot
from agent.video.settings import AnalyticsConfig, VideoConfig
from tests.support.media import FPS, H, W, ffprobe, make_frames


class FakeSensors:
    """Sensors double: a fix for the first calls, then no fix (exercises an honest track)."""

    def __init__(self, clock: ManualClock, fixes: int = 10**9) -> None:
        self.clock, self.calls, self.fixes = clock, 0, fixes

    def moment(self) -> Moment:
        self.calls += 1
        fix = GpsFix(lat=31.23, lon=121.47, mode=3, fix_time="2026-11-22T09:00:00Z") if self.calls <= self.fixes \
            else None
        return Moment(self.clock.wall_ns(), self.clock.mono_ns(), GpsReading(fix, "ok" if fix else "no fix"),
                      TimeQuality(source="ntp", synced=True))


@pytest.fixture
def staging(tmp_path: Path) -> Any:
    def make(ext: str) -> Path:
        fd, name = tempfile.mkstemp(suffix="." + ext, dir=tmp_path)
        import os

        os.close(fd)
        return Path(name)

    return make


def cfg(**kw: Any) -> VideoConfig:
    base: dict[str, Any] = {"segment_seconds": 2, "fragment_seconds": 0.5, "fps": FPS, "encoder": "libx264",
                            "preset": "ultrafast", "analytics": AnalyticsConfig(enabled=False)}
    return VideoConfig(**{**base, **kw})


def test_segments_are_h264_and_match_their_frame_times(staging: Any) -> None:
    clock = ManualClock()
    segs: list[ClosedSegment] = []
    rec = Recorder(cfg(), staging=staging, sensors=FakeSensors(clock, fixes=3), on_segment=segs.append)
    for f in make_frames(clock, 53):
        rec.push(f)
    rec.close()
    rec.close()  # idempotent
    assert [s.frame_count for s in segs] == [20, 20, 13]
    assert [s.segment_no for s in segs] == [0, 1, 2] and len({s.stream_id for s in segs}) == 1
    assert segs[1].first_index == 20 and segs[1].frame_mono_ns[0] - segs[0].frame_mono_ns[-1] == 100_000_000
    for s in segs:
        probe = ffprobe(s.path)
        assert probe["codec"] == "h264" and probe["width"] == W
        assert abs(probe["frames"] - s.frame_count) <= 1
        assert abs(probe["duration"] - s.duration_s) <= 1 / FPS
        assert s.end.mono_ns == s.frame_mono_ns[-1] and s.start.mono_ns == s.frame_mono_ns[0]
    # the GPS track is honest: a fix while there was one, then "no fix", sampled once a second
    track = [p.gps.fix is not None for s in segs for p in s.gps_track]
    assert track[:2] == [True, True] and track[-1] is False and len(track) == 6
    assert segs[0].encoder.as_record()["options"]["g"] == "5"


def test_stills_come_from_the_recorded_stream_without_a_gap(staging: Any) -> None:
    clock = ManualClock()
    segs: list[ClosedSegment] = []
    stills: list[StillShot] = []
    rec = Recorder(cfg(still_interval_s=1.0), staging=staging, sensors=FakeSensors(clock),
                   on_segment=segs.append, on_still=stills.append)
    frames = make_frames(clock, 30)
    for f in frames[:12]:
        rec.push(f)
    fut = rec.request_still()
    for f in frames[12:]:
        rec.push(f)
    rec.close()
    reasons = [(s.reason, s.frame.index) for s in stills]
    assert ("request", 12) in reasons
    assert [i for r, i in reasons if r == "schedule"] == [0, 10, 20]
    assert sum(s.frame_count for s in segs) == 30  # recording never paused for the stills
    req = next(s for s in stills if s.reason == "request")
    assert req.done is fut and req.moment.mono_ns == frames[12].mono_ns
    assert np.array_equal(req.frame.image, frames[12].image)


def test_pending_still_fails_on_close_and_a_size_change_starts_a_new_segment(staging: Any) -> None:
    clock = ManualClock()
    segs: list[ClosedSegment] = []
    shots: list[StillShot] = []
    rec = Recorder(cfg(), staging=staging, sensors=FakeSensors(clock), on_segment=segs.append,
                   on_still=shots.append)
    fut = rec.request_still()
    rec.push(make_frames(clock, 1)[0])
    assert shots[0].done is fut and shots[0].frame.index == 0
    smaller = Frame(image=np.zeros((H // 2, W, 3), np.uint8), index=1, wall_ns=clock.wall_ns(),
                    mono_ns=clock.mono_ns())
    rec.push(smaller)  # camera mode switch: the open segment closes, a new one starts at the new size
    assert [s.frame_count for s in segs] == [1]
    pending = rec.request_still()
    rec.close()
    assert [s.encoder.height for s in segs] == [H, H // 2]
    assert isinstance(pending.exception(), CaptureError)
    with pytest.raises(CaptureError, match="closed"):
        rec.push(smaller)


def test_encoder_choice_and_settings() -> None:
    assert choose_encoder("libx264") == "libx264"
    assert choose_encoder("auto") in ("libx264", "h264_v4l2m2m")
    enc = encoder_settings(cfg(fps=30, fragment_seconds=1), "libx264", 64, 48)
    opts = dict(enc.options)
    assert enc.gop == 30 and opts["bf"] == "0" and opts["sc_threshold"] == "0" and opts["crf"] == "23"
    hw = encoder_settings(cfg(), "h264_v4l2m2m", 64, 48)
    assert dict(hw.options)["b"] == "4000k"

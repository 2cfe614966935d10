"""One encoder across segments: I420 frames straight from the camera, every segment opening on an IDR frame
and playable on its own, a new encoder only for a new frame size."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.capture import CaptureSettings, open_backend
from agent.core.clock import ManualClock
from agent.core.model import Frame
from agent.video import segments
from agent.video.recorder import ClosedSegment, Recorder
from agent.video.settings import AnalyticsConfig, VideoConfig
from tests.unit.test_video_recorder import FakeSensors


def _frames(clock: ManualClock, n: int, w: int = 160, h: int = 120) -> list[Frame]:
    settings = CaptureSettings(width=w, height=h, fps=10, realtime=False)
    out = []
    with open_backend("synthetic", settings, clock) as cam:
        for _ in range(n):
            out.append(cam.read())
            clock.advance(0.1)
    return out


def _frames_of(path: Path) -> list[dict[str, Any]]:
    """Every frame ffprobe decodes from the file alone: key flag and picture type."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                          "frame=key_frame,pict_type", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    frames: list[dict[str, Any]] = json.loads(out)["frames"]
    return frames


@pytest.fixture
def staging(tmp_path: Path) -> Any:
    def make(ext: str) -> Path:
        fd, name = tempfile.mkstemp(suffix="." + ext, dir=tmp_path)
        import os

        os.close(fd)
        return Path(name)

    return make


def _cfg(**kw: Any) -> VideoConfig:
    base: dict[str, Any] = {"segment_seconds": 2, "fragment_seconds": 1, "fps": 10, "encoder": "libx264",
                            "preset": "veryfast", "analytics": AnalyticsConfig(enabled=False)}
    return VideoConfig(**{**base, **kw})


def test_one_encoder_feeds_every_segment_and_each_opens_on_an_idr_frame(staging: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    real_init = segments.H264Stream.__init__

    def counting_init(self: segments.H264Stream, *args: Any, **kwargs: Any) -> None:
        opened.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(segments.H264Stream, "__init__", counting_init)
    clock = ManualClock()
    segs: list[ClosedSegment] = []
    rec = Recorder(_cfg(), staging=staging, sensors=FakeSensors(clock), on_segment=segs.append)
    frames = _frames(clock, 65)
    assert frames[0].fmt == "yuv420p"
    for f in frames:
        rec.push(f)
    rec.close()
    assert len(opened) == 1  # not one per segment
    assert [s.frame_count for s in segs] == [20, 20, 20, 5]
    assert [s.segment_no for s in segs] == [0, 1, 2, 3]
    for s in segs:
        decoded = _frames_of(s.path)  # the file alone: no state from the previous segment is needed
        assert len(decoded) == s.frame_count
        assert decoded[0]["key_frame"] == 1 and decoded[0]["pict_type"] == "I"
        assert sum(f["key_frame"] for f in decoded) == -(-s.frame_count // 10)  # a keyframe a fragment (1 s)
    assert segs[0].encoder.as_record()["options"]["forced-idr"] == "1"


def test_a_new_frame_size_gets_a_new_encoder_and_segment(staging: Any) -> None:
    clock = ManualClock()
    segs: list[ClosedSegment] = []
    rec = Recorder(_cfg(segment_seconds=10), staging=staging, sensors=FakeSensors(clock), on_segment=segs.append)
    for f in _frames(clock, 7) + _frames(clock, 6, w=96, h=64):
        rec.push(f)
    rec.close()
    assert [(s.frame_count, s.encoder.width) for s in segs] == [(7, 160), (6, 96)]
    assert all(len(_frames_of(s.path)) == s.frame_count for s in segs)


def test_bgr_frames_are_still_accepted(staging: Any) -> None:
    clock = ManualClock()
    segs: list[ClosedSegment] = []
    rec = Recorder(_cfg(), staging=staging, sensors=FakeSensors(clock), on_segment=segs.append)
    for i in range(12):
        rec.push(Frame(image=np.full((120, 160, 3), 10 * i, np.uint8), index=i, wall_ns=clock.wall_ns(),
                       mono_ns=clock.mono_ns()))
        clock.advance(0.1)
    rec.close()
    assert [s.frame_count for s in segs] == [12] and len(_frames_of(segs[0].path)) == 12

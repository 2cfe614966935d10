"""OpenCV backend on files made at test time, on the real camera clips, over HTTP, and on bad sources."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.capture import CaptureSettings, EndOfStream, open_backend
from agent.capture.opencv import classify_source
from agent.core.clock import ManualClock
from agent.core.errors import CaptureError

REPO = Path(__file__).resolve().parents[2]
VIDEO = REPO / ".." / "shared" / "data" / "video"
# frames per clip, from ffprobe nb_frames (see ../shared/data/video/README.md)
CLIPS = {"car-detection.mp4": (377, (432, 768, 3)), "bottle-detection.mp4": (1189, (360, 640, 3))}
N = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MJPEG AVI whose frame i is uniformly grey level 20*i (order is checkable)."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(N):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    return path


def _level(image: np.ndarray) -> int:
    return round(float(image.mean()) / 20)


def _settings(source: str | int, **kw: object) -> CaptureSettings:
    return CaptureSettings(source=source, **kw)  # type: ignore[arg-type]


def test_file_replay_fast_reads_every_frame_in_order(clip: Path) -> None:
    clock = ManualClock()
    with open_backend("opencv", _settings(str(clip), realtime=False), clock) as cam:
        frames = []
        with pytest.raises(EndOfStream, match=f"after {N} frames"):
            while True:
                frames.append(cam.read())
                clock.advance(0.01)
    assert [f.index for f in frames] == list(range(N))
    assert [_level(f.image) for f in frames] == list(range(N))
    assert frames[0].image.shape == (48, 64, 3)  # native size, not the requested 1280x720
    assert frames[1].wall_ns - frames[0].wall_ns == 10_000_000  # times from the injected clock


def test_file_replay_realtime_uses_file_rate_and_loops(clip: Path) -> None:
    clock = ManualClock()
    with open_backend("opencv", _settings(str(clip), realtime=True, loop=True), clock) as cam:
        assert cam.source_fps == pytest.approx(10.0)  # type: ignore[attr-defined]
        levels = []
        for _ in range(N + 3):
            levels.append(_level(cam.read().image))
            clock.advance(0.1)  # keep the injected clock ahead of the pacing deadline
    assert levels == [*range(N), 0, 1, 2]


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_real_camera_clips(name: str) -> None:
    path = VIDEO / name
    if not path.is_file():
        pytest.skip(f"real clip {path} absent (../shared/data/video not mounted)")
    count, shape = CLIPS[name]
    n = 0
    with open_backend("opencv", _settings(str(path), realtime=False), ManualClock()) as cam:
        first = cam.read()
        n = 1
        with pytest.raises(EndOfStream):
            while True:
                cam.read()
                n += 1
    assert n == count
    assert first.image.shape == shape and first.image.dtype == np.uint8
    assert 30 < float(first.image.mean()) < 230  # a real picture, not a black or blown-out frame


@pytest.fixture()
def http_url(clip: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{clip.name}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_http_stream(http_url: str) -> None:
    with open_backend("opencv", _settings(http_url, realtime=False), ManualClock()) as cam:
        assert cam.describe().startswith("opencv url http://")
        levels = [_level(cam.read().image) for _ in range(3)]
    assert levels == [0, 1, 2]


def test_unreadable_sources_name_the_source(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(1).bytes(5000))
    cases = {
        str(garbage): f"cannot open file capture source {garbage}",
        str(tmp_path / "missing.mp4"): "missing.mp4 does not exist",
        "/dev/video97": "cannot open device capture source /dev/video97",
        "rtsp://user:secret@127.0.0.1:1/stream": r"cannot open url capture source rtsp://user:\*\*\*@127.0.0.1:1",
    }
    for source, message in cases.items():
        with pytest.raises(CaptureError, match=message) as info:
            open_backend("opencv", _settings(source), ManualClock())
        assert "secret" not in str(info.value)
    with pytest.raises(CaptureError, match="needs a source"):
        open_backend("opencv", CaptureSettings(), ManualClock())


def test_classify_source() -> None:
    assert classify_source(0) == ("device", 0)
    assert classify_source("2") == ("device", 2)
    assert classify_source("/dev/video3") == ("device", 3)
    assert classify_source("RTSP://cam/1") == ("url", "RTSP://cam/1")
    assert classify_source("clips/a.mp4") == ("file", "clips/a.mp4")

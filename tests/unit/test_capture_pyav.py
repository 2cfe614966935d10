"""PyAV backend: files and HTTP streams decoded to I420 by the encoders' FFmpeg, in order, paced, looped;
the real camera clips; bad sources named in one error (passwords hidden)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from agent.capture import CaptureSettings, EndOfStream, open_backend
from agent.capture.pixels import full_range, luma
from agent.core.clock import ManualClock
from agent.core.errors import CaptureError
from agent.core.model import Frame

REPO = Path(__file__).resolve().parents[2]
VIDEO = REPO / ".." / "shared" / "data" / "video"
CLIPS = {"car-detection.mp4": (377, (768, 432)), "bottle-detection.mp4": (1189, (640, 360))}  # frames, (w, h)
N = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MPEG-4 file whose frame i is uniformly grey level 20*i (order is checkable)."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qscale": "2"}
        for i in range(N):
            vf = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="bgr24")
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path


def _level(frame: Frame) -> int:
    return round(float(full_range(luma(frame)).mean()) / 20)


def _settings(source: str | int, **kw: object) -> CaptureSettings:
    return CaptureSettings(source=source, **kw)  # type: ignore[arg-type]


def test_file_replay_fast_reads_every_frame_in_order_as_i420(clip: Path) -> None:
    clock = ManualClock()
    with open_backend("pyav", _settings(str(clip), realtime=False), clock) as cam:
        frames = []
        with pytest.raises(EndOfStream, match=f"after {N} frames"):
            while True:
                frames.append(cam.read())
                clock.advance(0.01)
    assert [f.index for f in frames] == list(range(N))
    assert [_level(f) for f in frames] == list(range(N))
    assert frames[0].fmt == "yuv420p" and frames[0].image.shape == (72, 64)  # native size, I420
    assert frames[1].wall_ns - frames[0].wall_ns == 10_000_000  # times from the injected clock


def test_file_replay_realtime_uses_file_rate_and_loops(clip: Path) -> None:
    clock = ManualClock()
    with open_backend("pyav", _settings(str(clip), realtime=True, loop=True), clock) as cam:
        assert cam.source_fps == pytest.approx(10.0)  # type: ignore[attr-defined]
        levels = []
        for _ in range(N + 3):
            levels.append(_level(cam.read()))
            clock.advance(0.1)
    assert levels == [*range(N), 0, 1, 2]


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_real_camera_clips(name: str) -> None:
    path = VIDEO / name
    if not path.is_file():
        pytest.skip(f"real clip {path} absent (../shared/data/video not mounted)")
    count, (w, h) = CLIPS[name]
    with open_backend("pyav", _settings(str(path), realtime=False), ManualClock()) as cam:
        first = cam.read()
        n = 1
        with pytest.raises(EndOfStream):
            while True:
                cam.read()
                n += 1
    assert n == count
    assert (first.width, first.height, first.fmt) == (w, h, "yuv420p")
    assert 30 < float(full_range(luma(first)).mean()) < 230  # a real picture


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
    with open_backend("pyav", _settings(http_url, realtime=False), ManualClock()) as cam:
        assert cam.describe().startswith("pyav url http://")
        levels = [_level(cam.read()) for _ in range(3)]
    assert levels == [0, 1, 2]


def test_unreadable_sources_name_the_source(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(1).bytes(5000))
    cases = {
        str(garbage): f"cannot open file capture source {garbage}",
        str(tmp_path / "missing.mp4"): "missing.mp4 does not exist",
        "/dev/video97": "use backend \"opencv\" for the V4L2 camera",
        "rtsp://user:secret@127.0.0.1:1/stream": r"cannot open url capture source rtsp://user:\*\*\*@127.0.0.1:1",
    }
    for source, message in cases.items():
        with pytest.raises(CaptureError, match=message) as info:
            open_backend("pyav", _settings(source), ManualClock())
        assert "secret" not in str(info.value)
    with pytest.raises(CaptureError, match="needs a source"):
        open_backend("pyav", CaptureSettings(), ManualClock())

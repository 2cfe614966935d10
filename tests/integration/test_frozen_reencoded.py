"""A frozen picture passed through an encoder again (libx264, MPEG-4 at ordinary settings) is still frozen.

Keyframes and rate control make the re-encoded copy flicker by a few grey levels on up to a third of the
pixels, so an exact-repeat test never fires; the analyzer must still raise ``frozen`` (and end it when
the picture is live again), and must not raise it on the live stretches.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from agent.core.model import Frame
from agent.video.analytics import Analyzer
from agent.video.settings import AnalyticsConfig
from tests.support.helpers import SHARED

FPS = 10
Image = npt.NDArray[np.uint8]


def synthetic_scene(rng: np.random.Generator) -> Iterator[Image]:
    """A fixed, finely textured view with a moving object and sensor noise."""
    h, w = 240, 426
    base = cv2.resize(rng.integers(0, 256, (24, 43, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    base = np.clip(base.astype(np.int16) + rng.integers(-25, 26, (h, w, 1)), 0, 255).astype(np.uint8)
    i = 0
    while True:
        img = base.copy()
        x = (i * 5) % (w - 40)
        img[100:140, x:x + 40] = (30, 30, 220)
        yield np.clip(img.astype(np.int16) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
        i += 1


def real_scene() -> Iterator[Image]:
    path = SHARED / "data" / "video" / "car-detection.mp4"
    if not path.exists():
        pytest.skip(f"shared test data not available: {path}")
    while True:
        cap = cv2.VideoCapture(str(path))
        while True:
            ok, img = cap.read()
            if not ok:
                break
            yield img
        cap.release()


def reencode(frames: list[Image], codec: str) -> list[Image]:
    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4")
    stream = out.add_stream(codec, rate=FPS)
    stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    stream.gop_size = FPS  # a keyframe a second
    if codec == "libx264":
        stream.options = {"preset": "veryfast", "crf": "23"}
    else:
        stream.bit_rate = 1_500_000
    for img in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    buf.seek(0)
    with av.open(buf) as inp:
        return [f.to_ndarray(format="bgr24") for f in inp.decode(video=0)]


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
@pytest.mark.parametrize("scene", ["synthetic", "real"])
def test_frozen_through_an_encoder_is_detected_and_ends(codec: str, scene: str) -> None:
    source = synthetic_scene(np.random.default_rng(5)) if scene == "synthetic" else real_scene()
    live = [next(source) for _ in range(8 * FPS)]
    frozen = [live[-1]] * (10 * FPS)
    after = [next(source) for _ in range(6 * FPS)]
    frames = reencode(live + frozen + after, codec)
    analyzer = Analyzer(AnalyticsConfig())
    events = []
    for i, img in enumerate(frames):
        t = int(i * 1e9 / FPS)
        events += analyzer.feed(Frame(img, i, 1_790_000_000_000_000_000 + t, 10**9 + t))
    frozen_ev = [(e.phase, e.frame_index / FPS) for e in events if e.type == "frozen"]
    onset = next(t for p, t in frozen_ev if p == "onset")
    end = next(t for p, t in frozen_ev if p == "end")
    freeze_s, live_again_s = 8.0, 18.0
    assert freeze_s + 4.0 <= onset <= freeze_s + 8.0, frozen_ev  # frozen_seconds = 4, plus the encoder settling
    assert live_again_s <= end <= live_again_s + 2.0, frozen_ev
    assert len(frozen_ev) == 2, frozen_ev  # nothing on the live stretches, no flapping

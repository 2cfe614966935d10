"""A zoom is not a moved camera: the real analyzer re-baselines on a frame's ``view``, and still sees a real turn."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from agent.capture.zoom import crop_scale
from agent.core.model import Frame
from agent.core.view import ViewRegion
from agent.video.analytics import Analyzer
from agent.video.settings import AnalyticsConfig

FPS = 10
rng = np.random.default_rng(11)
SCENE = cv2.GaussianBlur(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8), (0, 0), 3)
SCENE = cv2.normalize(SCENE, None, 20, 235, cv2.NORM_MINMAX)
TURNED = cv2.flip(SCENE, -1)


def noisy(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.clip(img.astype(np.int16) + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)


def frames(plan: list[tuple[npt.NDArray[np.uint8], ViewRegion | None, int]], tag: bool = True) -> list[Frame]:
    """``plan``: (scene, zoom, seconds); frames are cropped and scaled as the hub does (tagged unless ``tag`` is
    False: the same pictures with no word of a zoom, as a moved camera would deliver them)."""
    out: list[Frame] = []
    for scene, region, seconds in plan:
        for _ in range(seconds * FPS):
            i = len(out)
            t = int(i * 1e9 / FPS)
            f = Frame(noisy(scene), i, 1_790_000_000_000_000_000 + t, 10**9 + t)
            if region is not None:
                f = crop_scale(f, region)
                if not tag:
                    f = Frame(f.image, f.index, f.wall_ns, f.mono_ns)
            out.append(f)
    return out


def events(fs: list[Frame]) -> list[tuple[str, str, float]]:
    a = Analyzer(AnalyticsConfig())
    return [(e.type, e.phase, round((e.mono_ns - 10**9) / 1e9, 1)) for f in fs for e in a.feed(f)]


ZOOM_IN = ViewRegion.centred(0.6, 0.45, 3.0)
PANNED = ViewRegion.centred(0.35, 0.6, 2.5)


def test_the_same_pictures_without_the_zoom_tag_would_be_a_moved_camera() -> None:
    """Control: the picture change a zoom makes is big enough to raise scene_change when nothing explains it."""
    ev = events(frames([(SCENE, None, 3), (SCENE, ZOOM_IN, 8)], tag=False))
    assert ("scene_change", "onset") in [(k, p) for k, p, _ in ev]


def test_zoom_pan_and_reset_raise_nothing() -> None:
    plan = [(SCENE, None, 3), (SCENE, ZOOM_IN, 8), (SCENE, PANNED, 8), (SCENE, None, 8)]
    a = Analyzer(AnalyticsConfig())
    out = [e for f in frames(plan) for e in a.feed(f)]
    assert out == []
    assert a.rebaselines == 3  # one per change of view


def test_a_camera_turned_while_zoomed_still_raises_scene_change() -> None:
    ev = events(frames([(SCENE, None, 3), (SCENE, ZOOM_IN, 6), (TURNED, ZOOM_IN, 8)]))
    assert [(k, p) for k, p, _ in ev][:1] == [("scene_change", "onset")]
    assert ev[0][2] >= 9.0  # after the turn (at 9 s), not at the zoom (at 3 s)


def test_a_camera_turned_after_the_zoom_ended_still_raises_scene_change() -> None:
    ev = events(frames([(SCENE, None, 3), (SCENE, ZOOM_IN, 5), (SCENE, None, 4), (TURNED, None, 8)]))
    assert [(k, p) for k, p, _ in ev][:1] == [("scene_change", "onset")]
    assert ev[0][2] >= 12.0

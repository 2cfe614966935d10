"""The numpy image operations analytics uses agree with the OpenCV functions they replace (OpenCV is a test
dependency here, not a device one), and frames are read the same way in I420 and BGR."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.capture import pixels
from agent.core.model import Frame
from agent.video import imgops

RNG = np.random.default_rng(7)
IMG = RNG.integers(0, 256, (720, 1280), dtype=np.uint8)


@pytest.mark.parametrize("size", [(160, 90), (150, 84), (9, 8), (48, 27), (40, 23), (4, 3)])
def test_area_resize_matches_opencv(size: tuple[int, int]) -> None:
    ours = imgops.resize_area(IMG, size)
    theirs = cv2.resize(IMG, size, interpolation=cv2.INTER_AREA)
    assert ours.dtype == np.uint8 and ours.shape == theirs.shape
    assert int(np.abs(ours.astype(int) - theirs).max()) <= 1  # rounding of the last bit only
    f = IMG.astype(np.float32)
    assert np.allclose(imgops.resize_area(f, size), cv2.resize(f, size, interpolation=cv2.INTER_AREA), atol=1e-3)


@pytest.mark.parametrize("size", [(320, 180), (300, 169), (37, 21)])
def test_nearest_resize_matches_opencv(size: tuple[int, int]) -> None:
    assert np.array_equal(imgops.resize_nearest(IMG, size), cv2.resize(IMG, size, interpolation=cv2.INTER_NEAREST))


def test_hanning_window_and_accumulate_match_opencv() -> None:
    assert np.allclose(imgops.hanning((160, 90)), cv2.createHanningWindow((160, 90), cv2.CV_32F), atol=1e-6)
    src = RNG.normal(size=(9, 16)).astype(np.float32)
    mask = (RNG.integers(0, 2, (9, 16))).astype(np.uint8)
    ours, theirs = np.ones((9, 16), np.float32), np.ones((9, 16), np.float32)
    imgops.accumulate_weighted(src, ours, 0.05, mask)
    cv2.accumulateWeighted(src, theirs, 0.05, mask)
    assert np.allclose(ours, theirs, atol=1e-6)


def test_phase_correlation_finds_the_shift_opencv_finds() -> None:
    base = RNG.normal(size=(120, 200)).astype(np.float32)
    a, b = base[10:100, 20:180].copy(), base[13:103, 15:175].copy()  # the view moved by (5, -3) pixels
    win = imgops.hanning((160, 90))
    (dx, dy), response = imgops.phase_correlate(a, b, win)
    (cdx, cdy), cresp = cv2.phaseCorrelate(a.copy(), b.copy(), win.copy())
    assert abs(dx - cdx) < 0.1 and abs(dy - cdy) < 0.1 and round(dx) == 5 and round(dy) == -3
    assert abs(response - cresp) < 0.05
    (sx, sy), same = imgops.phase_correlate(a, a, win)
    assert abs(sx) < 1e-6 and abs(sy) < 1e-6 and abs(same - 1.0) < 1e-6


def test_luma_of_i420_and_bgr_frames_agree() -> None:
    bgr = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    f_bgr = Frame(image=bgr, index=0, wall_ns=0, mono_ns=0)
    grey = pixels.luma(f_bgr)
    assert int(np.abs(grey.astype(int) - cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).max()) <= 1
    f_yuv = Frame(image=pixels.i420(f_bgr), index=0, wall_ns=0, mono_ns=0, fmt="yuv420p")
    assert (f_yuv.width, f_yuv.height) == (64, 48)
    y = pixels.luma(f_yuv)  # a view of the Y plane, limited range
    assert y.shape == (48, 64) and np.shares_memory(y, f_yuv.image)
    assert int(np.abs(pixels.full_range(y).astype(int) - grey).max()) <= 3
    jpeg = pixels.encode_jpeg(f_yuv, 80)
    assert jpeg[:2] == b"\xff\xd8"
    small = pixels.encode_jpeg(f_yuv, 80, size=(32, 24))
    assert cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_COLOR).shape == (24, 32, 3)


def test_the_device_process_caps_malloc_arenas() -> None:
    from agent.core.memory import limit_malloc_arenas, trim_heap

    assert limit_malloc_arenas() is True  # glibc here; a C library without mallopt gets False, not an error
    assert trim_heap() in (True, False)  # nothing to give back is not an error

"""Synthetic camera: deterministic pictures from (seed, index, clock), paced or fast."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from agent.capture import CaptureSettings, encode_jpeg, open_backend
from agent.capture.synthetic import SyntheticBackend
from agent.core.clock import ManualClock
from agent.core.errors import CaptureError


def _frames(seed: int, clock: ManualClock, n: int = 5, **kw: object) -> list[np.ndarray]:
    settings = CaptureSettings(width=160, height=120, fps=10, seed=seed, realtime=False, **kw)  # type: ignore[arg-type]
    out = []
    with open_backend("synthetic", settings, clock) as cam:
        for _ in range(n):
            out.append(cam.read().image)
            clock.advance(0.1)
    return out


def test_same_seed_and_clock_give_identical_frames() -> None:
    a = _frames(3, ManualClock())
    b = _frames(3, ManualClock())
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_seed_changes_the_picture() -> None:
    a = _frames(3, ManualClock(), n=1)[0]
    b = _frames(4, ManualClock(), n=1)[0]
    assert not np.array_equal(a, b)


def test_clock_only_changes_the_burned_in_band() -> None:
    a = _frames(1, ManualClock(wall=1_790_000_000_000_000_000), n=1)[0]
    b = _frames(1, ManualClock(wall=1_800_000_000_000_000_000), n=1)[0]
    band = 30  # the text band is at most ~25 px high at 160x120
    assert not np.array_equal(a[:band], b[:band])
    assert np.array_equal(a[band:], b[band:])


def test_frames_move_and_carry_index_and_clock_times() -> None:
    clock = ManualClock()
    settings = CaptureSettings(width=160, height=120, fps=10, seed=0, realtime=False)
    with SyntheticBackend(settings, clock) as cam:
        f0 = cam.read()
        clock.advance(1.0)
        f1 = cam.read()
    assert (f0.index, f1.index) == (0, 1)
    assert f0.fmt == "yuv420p" and f0.image.shape == (180, 160) and f0.image.dtype == np.uint8  # I420
    assert (f0.width, f0.height) == (160, 120)
    assert f1.wall_ns - f0.wall_ns == 1_000_000_000
    assert f1.mono_ns - f0.mono_ns == 1_000_000_000
    assert not np.array_equal(f0.image[40:], f1.image[40:])  # gradient scrolls, box moves


def test_realtime_read_paced_by_injected_clock_without_sleeping() -> None:
    clock = ManualClock()
    settings = CaptureSettings(width=64, height=48, fps=5, realtime=True)
    with open_backend("synthetic", settings, clock) as cam:
        for i in range(3):
            assert cam.read().index == i
            clock.advance(0.2)  # the deadline has passed: no wait


def test_close_from_another_thread_interrupts_a_paced_read() -> None:
    clock = ManualClock()  # never advances, so the second read would wait 1/fps = 100 s
    cam = open_backend("synthetic", CaptureSettings(width=64, height=48, fps=0.01), clock)
    cam.read()
    timer = threading.Timer(0.05, cam.close)
    timer.start()
    with pytest.raises(CaptureError, match="closed"):
        cam.read()
    timer.join()
    cam.close()  # idempotent


def test_lifecycle_errors_and_jpeg() -> None:
    cam = SyntheticBackend(CaptureSettings(width=64, height=48), ManualClock())
    with pytest.raises(CaptureError, match="not open"):
        cam.read()
    cam.open()
    cam.open()  # no-op
    jpeg = encode_jpeg(cam.read(), quality=80)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    with pytest.raises(CaptureError, match="no native still"):
        cam.capture_still()
    cam.close()
    cam.close()
    with pytest.raises(CaptureError, match="cannot be reopened"):
        cam.open()

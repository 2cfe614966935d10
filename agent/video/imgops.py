"""The few image operations analytics needs, in numpy: the device process does not load OpenCV.

Each follows OpenCV's definition of the operation it replaces (``resize`` with ``INTER_AREA`` and
``INTER_NEAREST``, ``phaseCorrelate``, ``createHanningWindow``, ``accumulateWeighted``); the unit tests
compare them with OpenCV where it is installed.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@functools.lru_cache(maxsize=64)
def _area_weights(n_in: int, n_out: int) -> F32:
    """(n_out, n_in): how much of each source pixel falls into each destination pixel, rows summing to 1."""
    scale = n_in / n_out
    lo = np.arange(n_out, dtype=np.float64)[:, None] * scale
    k = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(lo + scale, k + 1) - np.maximum(lo, k), 0.0, None)
    return np.asarray(overlap / scale, dtype=np.float32)


def resize_area(img: npt.NDArray[Any], size: tuple[int, int]) -> npt.NDArray[Any]:
    """Shrink a 2-D image to ``size`` = (width, height) by area averaging; uint8 stays uint8 (rounded)."""
    h, w = img.shape[:2]
    ow, oh = size
    if (ow, oh) == (w, h):
        return img.copy()
    if h % oh == 0 and w % ow == 0:  # whole blocks: a plain mean
        fy, fx = h // oh, w // ow
        out = img.reshape(oh, fy, ow, fx).astype(np.float32).mean(axis=(1, 3), dtype=np.float32)
    else:
        src = img.astype(np.float32)
        out = _area_weights(h, oh) @ src @ _area_weights(w, ow).T
    if img.dtype == np.uint8:
        return np.asarray(np.clip(np.rint(out), 0, 255), dtype=np.uint8)
    return np.asarray(out, dtype=img.dtype)


def resize_nearest(img: U8, size: tuple[int, int]) -> U8:
    """Pick the nearest source pixel (OpenCV's INTER_NEAREST: floor(x * in / out))."""
    h, w = img.shape[:2]
    ow, oh = size
    ys = np.minimum(np.arange(oh) * h // oh, h - 1)
    xs = np.minimum(np.arange(ow) * w // ow, w - 1)
    return np.ascontiguousarray(img[ys][:, xs])


def hanning(size: tuple[int, int]) -> F32:
    """A (height, width) Hann window, OpenCV's ``createHanningWindow``."""
    w, h = size
    wc = 0.5 * (1.0 - np.cos(2.0 * math.pi * np.arange(w) / max(w - 1, 1)))
    wr = 0.5 * (1.0 - np.cos(2.0 * math.pi * np.arange(h) / max(h - 1, 1)))
    return np.asarray(np.sqrt(np.outer(wr, wc)), dtype=np.float32)


def phase_correlate(a: F32, b: F32, window: F32 | None = None) -> tuple[tuple[float, float], float]:
    """Translation of ``b`` against ``a`` and the peak's strength, as OpenCV's ``phaseCorrelate``."""
    if window is not None:
        a, b = a * window, b * window
    spec = np.fft.rfft2(a) * np.conj(np.fft.rfft2(b))
    spec /= np.maximum(np.abs(spec), np.finfo(np.float64).tiny)
    corr = np.fft.fftshift(np.fft.irfft2(spec, s=a.shape))
    rows, cols = corr.shape
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    py, px = int(peak[0]), int(peak[1])
    y0, y1 = max(py - 2, 0), min(py + 3, rows)
    x0, x1 = max(px - 2, 0), min(px + 3, cols)
    win = corr[y0:y1, x0:x1]
    total = float(win.sum())
    if total == 0.0:
        cy, cx = float(py), float(px)
    else:
        cy = float((win.sum(axis=1) * np.arange(y0, y1)).sum()) / total
        cx = float((win.sum(axis=0) * np.arange(x0, x1)).sum()) / total
    return (cols / 2.0 - cx, rows / 2.0 - cy), total


def accumulate_weighted(src: F32, dst: F32, alpha: float, mask: npt.NDArray[np.generic] | None = None) -> None:
    """``dst = (1 - alpha) * dst + alpha * src`` in place, only where ``mask`` is non-zero."""
    blended = (1.0 - alpha) * dst + alpha * src
    if mask is None:
        dst[...] = blended
    else:
        np.copyto(dst, blended.astype(dst.dtype), where=mask.astype(bool))

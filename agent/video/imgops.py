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
def _edges(n_in: int, n_out: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Where each destination pixel's span starts and ends in the source: whole pixels and fraction."""
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    whole = np.minimum(np.floor(edges).astype(np.intp), n_in)
    return whole, edges - whole


def _area_1d(a: npt.NDArray[np.float64], n_out: int, axis: int) -> npt.NDArray[np.float64]:
    """Average ``a`` over ``n_out`` equal spans along ``axis`` (fractional pixels weighted by their share)."""
    n_in = a.shape[axis]
    whole, frac = _edges(n_in, n_out)
    moved = np.moveaxis(a, axis, 0)
    running = np.concatenate([np.zeros((1, *moved.shape[1:])), np.cumsum(moved, axis=0)])
    part = moved[np.minimum(whole, n_in - 1)] * frac.reshape(-1, *([1] * (moved.ndim - 1)))
    integral = running[whole] + part
    out = (integral[1:] - integral[:-1]) / (n_in / n_out)
    return np.moveaxis(out, 0, axis)


def resize_area(img: npt.NDArray[Any], size: tuple[int, int]) -> npt.NDArray[Any]:
    """Shrink a 2-D image to ``size`` = (width, height) by area averaging; uint8 stays uint8 (rounded)."""
    h, w = img.shape[:2]
    ow, oh = size
    if (ow, oh) == (w, h):
        return img.copy()
    if h % oh == 0 and w % ow == 0:  # whole blocks: a plain mean (integer sums for uint8: no float copy)
        fy, fx = h // oh, w // ow
        acc = np.uint32 if img.dtype == np.uint8 else np.float32
        rows = img.reshape(oh, fy, w).sum(axis=1, dtype=acc)
        out = rows.reshape(oh, ow, fx).sum(axis=2, dtype=acc).astype(np.float32) / np.float32(fy * fx)
    else:
        # running sums, not a weight-matrix product: numpy's matmul wakes OpenBLAS's thread pool, whose
        # spinning threads cost more CPU than these small images themselves
        out = _area_1d(_area_1d(img.astype(np.float64), oh, 0), ow, 1)
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

"""Digital zoom after capture: crop a region of a frame and scale it back to the frame's size.

For backends without a zoom of their own (synthetic, OpenCV, PyAV): the frame hub applies it to every frame
before fan-out, so the recorder, stills, analytics and live view all see the same zoomed picture. Scaling is
swscale's bilinear (PyAV), in the frame's own pixel format (I420 stays I420). picamera2 zooms in the ISP
instead (``ScalerCrop``), from the full sensor, which is why only there a zoom shows more detail.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from agent.core.model import Frame
from agent.core.view import ViewRegion

_local = threading.local()  # one swscale context per thread (the hub's), kept while the sizes stay the same


def _reformatter() -> Any:
    r = getattr(_local, "reformatter", None)
    if r is None:
        from av.video.reformatter import VideoReformatter

        r = _local.reformatter = VideoReformatter()
    return r


def crop_rect(region: ViewRegion, width: int, height: int) -> tuple[int, int, int, int]:
    """The region as a frame pixel rectangle whose sides are multiples of 4 (I420 planes stay whole)."""
    x, y, w, h = region.pixels(width, height)
    w, h = max(4, w - w % 4), max(4, h - h % 4)
    return min(x, width - w) // 2 * 2, min(y, height - h) // 2 * 2, w, h


def crop_pixels(frame: Frame, rect: tuple[int, int, int, int]) -> Frame:
    """The ``(x, y, w, h)`` part of ``frame`` at its own pixels (no scaling); I420 stays I420 (even offsets,
    sides multiples of 4, as :func:`crop_rect` gives them)."""
    x, y, w, h = rect
    if frame.fmt == "yuv420p":
        width, height = frame.width, frame.height
        img = frame.image
        q = height // 4
        planes = (img[:height], img[height:height + q].reshape(height // 2, width // 2),
                  img[height + q:height + 2 * q].reshape(height // 2, width // 2))
        parts = [planes[0][y:y + h, x:x + w].reshape(-1)]
        parts += [p[y // 2:(y + h) // 2, x // 2:(x + w) // 2].reshape(-1) for p in planes[1:]]
        src = np.concatenate(parts).reshape(h * 3 // 2, w)
    else:
        src = np.ascontiguousarray(frame.image[y:y + h, x:x + w])
    return dataclasses.replace(frame, image=src)


def crop_scale(frame: Frame, region: ViewRegion) -> Frame:
    """``frame`` showing only ``region``, at the frame's own size; ``view`` says which part (in its pixels)."""
    if region.full:
        return frame
    import av

    width, height = frame.width, frame.height
    x, y, w, h = crop_rect(region, width, height)
    src = crop_pixels(frame, (x, y, w, h)).image
    vf = av.VideoFrame.from_ndarray(src, format=frame.fmt)
    out = _reformatter().reformat(vf, width=width, height=height, format=frame.fmt,
                                  interpolation="BILINEAR").to_ndarray()
    shown = ViewRegion.of_pixels((x, y, w, h), (0, 0, width, height))
    return dataclasses.replace(frame, image=np.asarray(out, dtype=np.uint8), view=shown)

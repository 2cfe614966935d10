"""The part of the camera's full field of view a frame shows (digital zoom), in normalised coordinates.

A region is ``(x, y, w, h)`` as fractions of the full view (the sensor's crop maximum on picamera2, the source
frame elsewhere): ``(0, 0, 1, 1)`` is everything. A zoom keeps the view's aspect (``w == h`` as fractions), so
the zoom factor is ``1 / w``. Pixel rectangles are made even (I420 chroma is subsampled by two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_EPS = 1e-9


@dataclass(frozen=True)
class ViewRegion:
    """A region of the full view, as fractions of its width and height."""

    x: float = 0.0
    y: float = 0.0
    w: float = 1.0
    h: float = 1.0

    def __post_init__(self) -> None:
        values = (self.x, self.y, self.w, self.h)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise ValueError(f"view region must be four finite numbers, got {values}")
        if not (self.w > 0 and self.h > 0 and self.x >= -_EPS and self.y >= -_EPS
                and self.x + self.w <= 1 + _EPS and self.y + self.h <= 1 + _EPS):
            raise ValueError(f"view region {values} is not inside the full view")

    @classmethod
    def centred(cls, cx: float, cy: float, factor: float) -> ViewRegion:
        """The region ``factor`` times closer around ``(cx, cy)``; ValueError when it leaves the full view."""
        if not (math.isfinite(factor) and factor >= 1):
            raise ValueError(f"zoom factor must be a number >= 1, got {factor}")
        side = 1.0 / factor
        return cls(cx - side / 2, cy - side / 2, side, side)

    @property
    def full(self) -> bool:
        return self.w >= 1 - _EPS and self.h >= 1 - _EPS

    @property
    def factor(self) -> float:
        """How much closer than the full view (1.0 = not zoomed)."""
        return 1.0 / max(self.w, self.h)

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def pixels(self, width: int, height: int, *, left: int = 0, top: int = 0) -> tuple[int, int, int, int]:
        """The region as an even ``(x, y, w, h)`` pixel rectangle of a ``width`` x ``height`` area at
        ``(left, top)``, at least 2x2, inside the area."""
        w = max(2, min(width, round(self.w * width / 2) * 2))
        h = max(2, min(height, round(self.h * height / 2) * 2))
        x = max(0, min(width - w, round(self.x * width / 2) * 2))
        y = max(0, min(height - h, round(self.y * height / 2) * 2))
        return left + x, top + y, w, h

    @classmethod
    def of_pixels(cls, rect: tuple[int, int, int, int], area: tuple[int, int, int, int]) -> ViewRegion:
        """The region a pixel rectangle covers of ``area`` (both ``(x, y, w, h)``), clipped to the area."""
        ax, ay, aw, ah = area
        x, y, w, h = rect
        fx, fy = min(1.0, max(0.0, (x - ax) / aw)), min(1.0, max(0.0, (y - ay) / ah))
        return cls(fx, fy, max(_EPS, min(1.0 - fx, w / aw)), max(_EPS, min(1.0 - fy, h / ah)))

    def as_record(self) -> dict[str, Any]:
        """What a sealed record and a live header carry: the region (6 decimals) and its zoom factor."""
        return {"x": round(self.x, 6), "y": round(self.y, 6), "w": round(self.w, 6), "h": round(self.h, 6),
                "factor": round(self.factor, 3)}

    def same(self, other: ViewRegion | None, tol: float = 1e-3) -> bool:
        """Equal within ``tol`` (a camera reports its crop rounded to its own pixel steps); None is the full view."""
        o = other or FULL_VIEW
        return all(abs(a - b) <= tol for a, b in ((self.x, o.x), (self.y, o.y), (self.w, o.w), (self.h, o.h)))


FULL_VIEW = ViewRegion()

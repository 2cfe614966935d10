"""``view.zoom`` arguments: a centre and a zoom factor (or a reset), checked before anything moves.

``{"cx": 0.62, "cy": 0.40, "factor": 3.0}`` asks for the region ``factor`` times closer around ``(cx, cy)``,
both fractions of the full view (the sensor's crop maximum on picamera2, the source frame elsewhere). The
region keeps the view's aspect, must lie wholly inside the full view (a centre too near an edge for that
factor is refused, never moved) and ``factor`` is 1 to ``ZOOM_MAX``. ``{"reset": true}`` returns to the full
view. Nothing else is accepted: no extra keys, no strings for numbers, no NaN or infinity.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.core.view import FULL_VIEW, ViewRegion
from agent.core.vocab import ZOOM_MAX

_SLACK = 1e-9  # float rounding of a centre computed by a page from its own pixels


class ZoomArgs(BaseModel):
    """A zoom request; :attr:`region` is what it asks to show."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    reset: Literal[True] | None = None
    cx: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    cy: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    factor: float | None = Field(default=None, ge=1.0, le=ZOOM_MAX, allow_inf_nan=False)

    @model_validator(mode="after")
    def _whole(self) -> Self:
        given = [v is not None for v in (self.cx, self.cy, self.factor)]
        if self.reset:
            if any(given):
                raise ValueError("reset takes no cx, cy or factor")
            return self
        if not all(given):
            raise ValueError("give cx, cy and factor (fractions of the full view, factor 1 to "
                             f"{ZOOM_MAX:g}), or reset: true")
        assert self.cx is not None and self.cy is not None and self.factor is not None
        half = 0.5 / self.factor
        for name, c in (("cx", self.cx), ("cy", self.cy)):
            if c - half < -_SLACK or c + half > 1 + _SLACK:
                raise ValueError(f"{name} {c:g}: at {self.factor:g}x the region would leave the frame "
                                 f"({name} must be within [{half:.4f}, {1 - half:.4f}])")
        return self

    @property
    def region(self) -> ViewRegion:
        if self.reset or self.factor is None or self.cx is None or self.cy is None:
            return FULL_VIEW
        side = 1.0 / self.factor
        x = min(max(self.cx - side / 2, 0.0), 1.0 - side)
        y = min(max(self.cy - side / 2, 0.0), 1.0 - side)
        return ViewRegion(x, y, side, side)

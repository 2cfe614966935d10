"""Partial obstruction: part of the view lost its texture (a board, a cloth, a hand near the lens).

The view is cut into an 8x6 grid; each cell's texture is the grey standard deviation inside it, and a
reference follows the settled view slowly. A cell is obstructed when its texture fell below
``CELL_DROP`` of its reference *relative to the rest of the view* (the 90th percentile of all cells'
ratios), so lights dimming everywhere obstruct nothing, and has stayed so for ``scene_settle_seconds``
(something crossing the view hides each cell only briefly). Cells that had no texture to lose (a white
wall) do not count. The whole view covered is ``uniform``/``too_dark``, handled elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.video.imgops import accumulate_weighted, resize_area
from agent.video.settings import AnalyticsConfig

GRID = (8, 6)  # cells across, down
MIN_TEXTURE = 8.0  # grey-level standard deviation a cell needs in the reference to count
MIN_CELLS = 12  # fewer textured cells than this: nothing to judge by
CELL_DROP = 0.35
STILL_LEVELS = 2.0  # a cell whose mean grey moved more than this since the last frame is not learned
FOLLOW = 0.02  # reference update weight per analysed frame (about 10 s at 5 fps)


@dataclass(frozen=True)
class Obstruction:
    obstructed: bool
    fraction: float
    confidence: float
    details: tuple[tuple[str, Any], ...] = ()


def cell_stats(grey: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Mean and standard deviation of grey inside each grid cell."""
    g = grey.astype(np.float32)
    mean = np.asarray(resize_area(g, GRID), dtype=np.float32)
    sq = resize_area(g * g, GRID)
    return mean, np.asarray(np.sqrt(np.maximum(sq - mean * mean, 0.0)), dtype=np.float32)


class ObstructionCheck:
    """Feed analysed grey frames; :meth:`update` says how much of the textured view is hidden."""

    def __init__(self, cfg: AnalyticsConfig) -> None:
        self.cfg = cfg
        self._settle_ns = int(cfg.scene_settle_seconds * 1e9)
        self._ref: npt.NDArray[np.float32] | None = None
        self._mean: npt.NDArray[np.float32] | None = None
        self._since = np.full((GRID[1], GRID[0]), -1, np.int64)  # when each cell became hidden, -1 = not

    def update(self, grey: npt.NDArray[np.uint8], t: int, *, learn: bool) -> Obstruction:
        """``learn``: the view is settled and not obstructed, so the reference may follow it."""
        mean, tex = cell_stats(grey)
        prev_mean, self._mean = self._mean, mean
        if self._ref is None or self._ref.shape != tex.shape or prev_mean is None:
            self._ref = tex.copy()
            return Obstruction(False, 0.0, 0.0)
        still = np.abs(mean - prev_mean) < STILL_LEVELS  # a moving object's texture is no reference
        textured = self._ref >= MIN_TEXTURE
        if int(textured.sum()) < MIN_CELLS:
            if learn:
                accumulate_weighted(tex, self._ref, FOLLOW, still)
            return Obstruction(False, 0.0, 0.0)
        ratio = tex / np.maximum(self._ref, 1e-3)
        scale = max(float(np.percentile(ratio[textured], 90)), 1e-3)
        hidden = textured & (ratio < CELL_DROP * scale)
        self._since = np.where(hidden, np.where(self._since < 0, t, self._since), -1)
        held = hidden & (t - self._since >= self._settle_ns)
        fraction = float(held.sum()) / float(textured.sum())
        raw = fraction >= self.cfg.obstructed_fraction
        if learn and not raw:  # follow the settled view
            mask = (~hidden & still & (ratio > 0.5) & (ratio < 2.0)).astype(np.uint8)
            accumulate_weighted(tex, self._ref, FOLLOW, mask)
        confidence = round(0.5 + 0.5 * min(1.0, fraction), 3) if raw else 0.0
        return Obstruction(raw, fraction, confidence, (("fraction", round(fraction, 3)),
                                                        ("cells", int(textured.sum()))))

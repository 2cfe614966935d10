"""Frozen feed vs still scene: is the camera still delivering new exposures?

Content stillness alone cannot tell them apart: a fixed camera watching an empty room sees no change
for hours. What a live camera always has is *sensor noise* (consecutive exposures of a still scene
differ in many pixels by a grey level or two) and, on picamera2, its own counters: each exposure has a
new ``SensorTimestamp`` and ``SensorSequence``. A frozen feed has neither: the same exposure again
(bit-identical, or identical after decode), or a frozen picture re-encoded, whose decoded frames
differ only where the encoder refines its last picture (a few blocks) and at keyframes (a little).

Measured on real H.264 footage (the shared clips and x264/MPEG-4 re-encodes of them, analysed at
5 fps on a 320-pixel-wide nearest-neighbour sample): a still real room changes a median 1.6-41 % of
the sampled pixels per analysed frame (crf 33-23) and its keyframes 70-79 %; a frozen picture through
the same encoders a median 0-0.3 % and at most 7-13 % at its keyframes. The H.264 stream of a still
room does repeat a frame exactly now and then (skipped macroblocks), so single exact repeats prove
nothing; the statistics over ``frozen_seconds`` do.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.core.model import SensorMeta
from agent.video.imgops import resize_area, resize_nearest
from agent.video.settings import AnalyticsConfig

SAMPLE_WIDTH = 320  # nearest-neighbour: averaging would hide a live sensor's noise
CONTENT_WIDTH = 40  # area-averaged: encoder flicker averages out, a moving object does not


@dataclass(frozen=True)
class Liveness:
    """One analysed frame's verdict: frozen or not, why, how sure, and the figures behind it."""

    frozen: bool
    cause: str  # "sensor_counters" | "identical_exposure" | "no_sensor_noise" | ""
    confidence: float
    details: tuple[tuple[str, Any], ...] = ()


class FrozenCheck:
    """Feed analysed frames in order; :meth:`update` says whether the feed is frozen at this frame."""

    def __init__(self, cfg: AnalyticsConfig) -> None:
        self.cfg = cfg
        self._hold_ns = int(cfg.onset_seconds * 1e9)
        self._window_ns = int(cfg.frozen_seconds * 1e9)
        self.reset()

    def reset(self) -> None:
        """Forget the past (the picture was blind: covered or dark is not frozen)."""
        self._prev: npt.NDArray[np.uint8] | None = None
        self._content_ref: npt.NDArray[np.int16] | None = None
        self._content_since: int | None = None
        self._noise: collections.deque[tuple[int, float]] = collections.deque()
        self._sensor: SensorMeta | None = None
        self._stalled_since: int | None = None
        self._identical_since: int | None = None
        self.changed = 1.0  # share of sampled pixels changed against the previous analysed frame

    @property
    def sample(self) -> npt.NDArray[np.uint8] | None:
        """The noise-bearing sample of the last analysed frame."""
        return self._prev

    def update(self, image: npt.NDArray[np.uint8], sensor: SensorMeta | None, t: int) -> Liveness:
        h, w = image.shape[:2]
        sw = min(w, SAMPLE_WIDTH)
        sample = resize_nearest(image, (sw, max(1, round(h * sw / w))))
        grey = sample if sample.ndim == 2 else _grey(sample)
        content = np.asarray(resize_area(grey, (CONTENT_WIDTH, max(1, round(h * CONTENT_WIDTH / w)))),
                             dtype=np.int16)
        prev, self._prev = self._prev, sample
        prev_sensor, self._sensor = self._sensor, sensor
        if prev is None or prev.shape != sample.shape or self._content_ref is None \
                or self._content_ref.shape != content.shape:
            self._content_ref, self._content_since = content, t
            self._noise.clear()
            return Liveness(False, "", 0.0)
        self.changed = changed = float(np.count_nonzero(sample != prev)) / sample.size
        delta = float(np.abs(content - self._content_ref).max())
        if delta > self.cfg.frozen_content_delta:  # new content: the picture is live
            self._content_ref, self._content_since = content, t
            self._noise.clear()
        self._noise.append((t, changed))
        while self._noise and self._noise[0][0] < t - self._window_ns:
            self._noise.popleft()

        # the camera's own counters: a repeated or backward exposure is the same exposure delivered again
        stalled = sensor is not None and prev_sensor is not None and _not_advancing(prev_sensor, sensor)
        new_exposure = sensor is not None and prev_sensor is not None and not stalled \
            and sensor.sensor_ns is not None
        self._stalled_since = (self._stalled_since or t) if stalled else None
        identical = new_exposure and changed == 0.0  # a real sensor never repeats an exposure bit for bit
        self._identical_since = (self._identical_since or t) if identical else None
        values = [c for _, c in self._noise]
        median, peak = float(np.median(values)), max(values)
        still_ns = t - (self._content_since or t)
        figures = (("content_delta", round(delta, 2)), ("noise_median", round(median, 5)),
                   ("noise_peak", round(peak, 5)), ("still_s", round(still_ns / 1e9, 2)))
        if self._stalled_since is not None and t - self._stalled_since >= self._hold_ns:
            assert sensor is not None and prev_sensor is not None
            return Liveness(True, "sensor_counters", 1.0, (
                *figures, ("sequence", sensor.sequence), ("sensor_ns", sensor.sensor_ns)))
        if self._identical_since is not None and t - self._identical_since >= self._hold_ns:
            return Liveness(True, "identical_exposure", 0.99, figures)
        quiet = median < self.cfg.frozen_noise_fraction and peak < self.cfg.frozen_refresh_fraction
        if quiet and still_ns >= self._window_ns and not (new_exposure and changed > 0):
            # without counters: how far below the live thresholds the noise stayed (0.5 at them, 1 at none)
            level = max(median / max(self.cfg.frozen_noise_fraction, 1e-9),
                        peak / max(self.cfg.frozen_refresh_fraction, 1e-9))
            return Liveness(True, "no_sensor_noise", round(0.5 + 0.5 * (1.0 - min(1.0, level)), 3), figures)
        return Liveness(False, "", 0.0, figures)


def _grey(bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """BT.601 grey of BGR pixels (a grey plane, e.g. I420's luma, is used as it is)."""
    grey = bgr[..., 0] * np.float32(0.114) + bgr[..., 1] * np.float32(0.587) + bgr[..., 2] * np.float32(0.299)
    return np.asarray(np.rint(grey), dtype=np.uint8)


def _not_advancing(prev: SensorMeta, cur: SensorMeta) -> bool:
    """The sensor's frame counter or timestamp did not move forward."""
    if cur.sequence is not None and prev.sequence is not None and cur.sequence <= prev.sequence:
        return True
    return cur.sensor_ns is not None and prev.sensor_ns is not None and cur.sensor_ns <= prev.sensor_ns

"""A moving test pattern with a burned-in UTC clock and frame counter: the demo camera.

The picture is a pure function of (seed, frame index, clock reading), so two backends with the
same seed fed the same clock produce identical frames, and a frame's own pixels say when it
was taken and which frame it was -- handy when checking recorded segments by eye.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from agent.capture.base import CaptureBackend, CaptureSettings, Pacer
from agent.core.clock import Clock, iso_utc
from agent.core.model import Frame

# SMPTE-like bars, BGR: white, yellow, cyan, green, magenta, red, blue
_BARS = [(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0), (192, 0, 192), (0, 0, 192), (192, 0, 0)]


class SyntheticBackend(CaptureBackend):
    """Colour bars, a scrolling grey band and a bouncing box; seed picks colour, speed and texture.

    The band scrolls along a seeded random-walk strip of ``TAPE`` pixels at 4 px a frame, so the picture does
    not repeat for ``TAPE / 4`` frames (41 min at 10 fps): like a real scene, it never looks like a loop to the
    replayed-footage check, whose window is at most 10 minutes.
    """

    name: ClassVar[str] = "synthetic"
    capabilities: ClassVar[frozenset[str]] = frozenset({"simulated"})

    def __init__(self, settings: CaptureSettings, clock: Clock) -> None:
        super().__init__(settings, clock)
        self._index = 0
        self._pacer = Pacer(settings.fps)
        self._background: npt.NDArray[np.uint8] | None = None
        rng = np.random.default_rng(settings.seed)
        self._box_colour = tuple(int(c) for c in rng.integers(40, 256, size=3))
        self._velocity = (float(rng.uniform(0.004, 0.012)), float(rng.uniform(0.003, 0.010)))
        self._phase = (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)))
        self._rng_seed = settings.seed
        steps = np.random.default_rng(settings.seed + 1).integers(-6, 7, size=TAPE)
        walk = np.cumsum(steps) % 510  # folded, not wrapped: a smooth grey band without hard edges
        self._tape = np.where(walk > 255, 510 - walk, walk).astype(np.uint8)

    def describe(self) -> str:
        s = self.settings
        return f"synthetic {s.width}x{s.height}@{s.fps:g} seed={s.seed}"

    def _open(self) -> None:
        self._background = self._make_background()
        self._index = 0
        self._pacer.reset()

    def _close(self) -> None:
        self._background = None

    def _read(self) -> Frame:
        assert self._background is not None
        if self.settings.realtime:
            self._pace(self._pacer)
        wall, mono = self.clock.wall_ns(), self.clock.mono_ns()
        image = self.render(self._index, wall)
        frame = Frame(image=image, index=self._index, wall_ns=wall, mono_ns=mono)
        self._index += 1
        return frame

    # -- drawing ------------------------------------------------------------------
    def _make_background(self) -> npt.NDArray[np.uint8]:
        """Bars in the top two thirds plus a fixed low-amplitude seeded texture (sensor-like noise)."""
        w, h = self.settings.width, self.settings.height
        img = np.zeros((h, w, 3), np.uint8)
        bars_h = h * 2 // 3
        for i, colour in enumerate(_BARS):
            x0, x1 = i * w // len(_BARS), (i + 1) * w // len(_BARS)
            img[:bars_h, x0:x1] = colour
        noise = np.random.default_rng(self._rng_seed).integers(0, 12, size=(h, w, 1), dtype=np.uint8)
        return np.asarray(cv2.add(img, np.repeat(noise, 3, axis=2)), dtype=np.uint8)

    def render(self, index: int, wall_ns: int) -> npt.NDArray[np.uint8]:
        """The picture for frame ``index`` stamped with ``wall_ns`` (deterministic)."""
        assert self._background is not None
        w, h = self.settings.width, self.settings.height
        img = self._background.copy()
        bars_h = h * 2 // 3
        # scrolling grey band in the bottom third: a window on the seeded tape
        ramp = self._tape[(np.arange(w, dtype=np.int64) + index * 4) % TAPE]
        img[bars_h:, :, :] = ramp[None, :, None]
        # bouncing box (triangle wave in x and y)
        bw, bh = max(w // 8, 4), max(h // 8, 4)
        x = int(_bounce(self._phase[0] + index * self._velocity[0]) * (w - bw))
        y = int(_bounce(self._phase[1] + index * self._velocity[1]) * (h - bh))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), self._box_colour, thickness=-1)
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 0, 0), thickness=max(1, w // 320))
        self._stamp(img, index, wall_ns)
        return img

    def _stamp(self, img: npt.NDArray[np.uint8], index: int, wall_ns: int) -> None:
        """Burn in UTC time and frame counter on a black band, readable at any size."""
        w = img.shape[1]
        scale = max(w / 1280.0, 0.3)
        thick = max(1, round(2 * scale))
        lines = [iso_utc(wall_ns)[:23] + "Z", f"frame {index:08d}  seed {self.settings.seed}"]
        line_h = int(40 * scale) + 4
        cv2.rectangle(img, (0, 0), (w, line_h * len(lines) + 6), (0, 0, 0), thickness=-1)
        for i, text in enumerate(lines):
            org = (int(8 * scale) + 2, line_h * (i + 1) - 2)
            cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 1.1 * scale, (255, 255, 255), thick, cv2.LINE_AA)


TAPE = 100_003  # pixels of scrolling band before it repeats (prime: no short period with any frame width)


def _bounce(t: float) -> float:
    """Triangle wave in [0, 1] with period 2."""
    t = t % 2.0
    return t if t <= 1.0 else 2.0 - t

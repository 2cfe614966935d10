"""A moving test pattern with a burned-in UTC clock and frame counter: the demo camera (I420 frames).

The picture is a pure function of (seed, frame index, clock reading), so two backends with the
same seed fed the same clock produce identical frames, and a frame's own pixels say when it
was taken and which frame it was -- handy when checking recorded segments by eye.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from agent.capture.base import CaptureBackend, CaptureSettings, Pacer
from agent.capture.drawing import caption, fill, planes, text_strip, write_luma
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
        b, g, r = (int(c) for c in rng.integers(40, 256, size=3))
        self._box_colour = (b, g, r)
        self._velocity = (float(rng.uniform(0.004, 0.012)), float(rng.uniform(0.003, 0.010)))
        self._phase = (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)))
        self._rng_seed = settings.seed
        steps = np.random.default_rng(settings.seed + 1).integers(-6, 7, size=TAPE)
        walk = np.cumsum(steps) % 510  # folded, not wrapped: a smooth grey band without hard edges
        self._tape = np.where(walk > 255, 510 - walk, walk).astype(np.uint8)

    def describe(self) -> str:
        s = self.settings
        sensor = f" sensor {s.sensor_width}x{s.sensor_height}" if s.sensor_width else ""
        return f"synthetic {s.width}x{s.height}@{s.fps:g} seed={s.seed}{sensor}"

    def sensor_size(self) -> tuple[int, int] | None:
        s = self.settings
        return None if s.sensor_width is None or s.sensor_height is None else (s.sensor_width, s.sensor_height)

    def full_frame(self, latest: Frame | None) -> Frame | None:
        """The latest frame's scene drawn again at the configured sensor size (``[capture] sensor_width/height``):
        same seed, index and time, so the box, band and stamp are where the stream shows them, and the document
        card is sharp. Nothing is kept afterwards (about 18 MB of I420 at 4608x2592, plus its background)."""
        size = self.sensor_size()
        if latest is None or size is None or size == (latest.width, latest.height):
            return latest
        sensor = SyntheticBackend(dataclasses.replace(self.settings, width=size[0], height=size[1]), self.clock)
        sensor._background = sensor._make_background()
        image = sensor.render(latest.index, latest.wall_ns)
        return Frame(image=image, index=latest.index, wall_ns=latest.wall_ns, mono_ns=latest.mono_ns,
                     fmt="yuv420p")

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
        frame = Frame(image=image, index=self._index, wall_ns=wall, mono_ns=mono, fmt="yuv420p")
        self._index += 1
        return frame

    # -- drawing (straight in I420: the encoders' format, no conversion) --------------------
    def _make_background(self) -> npt.NDArray[np.uint8]:
        """Bars in the top two thirds plus a fixed low-amplitude seeded texture (sensor-like noise)."""
        w, h = self._even_size()
        img = np.zeros((h * 3 // 2, w), np.uint8)
        luma, u, v = planes(img, w, h)
        luma[:], u[:], v[:] = 16, 128, 128
        bars_h = h * 2 // 3
        for i, colour in enumerate(_BARS):
            fill(img, w, h, (i * w // len(_BARS), 0, (i + 1) * w // len(_BARS), bars_h), colour)
        noise = np.random.default_rng(self._rng_seed).integers(0, 12, size=(h, w), dtype=np.uint8)
        for top in range(0, h, 256):  # in bands: the same pixels, without frame-sized temporaries at a sensor's size
            rows = slice(top, top + 256)
            luma[rows] = np.minimum(luma[rows].astype(np.uint16) + noise[rows] * 219 // 255, 235).astype(np.uint8)
        return img

    def _even_size(self) -> tuple[int, int]:
        w, h = self.settings.width, self.settings.height
        return w + w % 2, h + h % 2

    def render(self, index: int, wall_ns: int) -> npt.NDArray[np.uint8]:
        """The I420 picture for frame ``index`` stamped with ``wall_ns`` (deterministic)."""
        assert self._background is not None
        w, h = self._even_size()
        img = self._background.copy()
        luma, u, v = planes(img, w, h)
        bars_h = h * 2 // 3
        # scrolling grey band in the bottom third: a window on the seeded tape
        ramp = self._tape[(np.arange(w, dtype=np.int64) + index * 4) % TAPE]
        luma[bars_h:, :] = (16 + ramp.astype(np.uint16) * 219 // 255).astype(np.uint8)[None, :]
        u[bars_h // 2:], v[bars_h // 2:] = 128, 128
        # bouncing box (triangle wave in x and y) with a black border
        bw, bh = max(w // 8, 4), max(h // 8, 4)
        x = int(_bounce(self._phase[0] + index * self._velocity[0]) * (w - bw))
        y = int(_bounce(self._phase[1] + index * self._velocity[1]) * (h - bh))
        edge = max(1, w // 320)
        fill(img, w, h, (x - edge, y - edge, x + bw + edge + 1, y + bh + edge + 1), (0, 0, 0))
        fill(img, w, h, (x + edge, y + edge, x + bw - edge + 1, y + bh - edge + 1), self._box_colour)
        self._stamp(img, w, h, index, wall_ns)
        if self.settings.sensor_width is not None:
            self._document(img, w, h)
        return img

    def _document(self, img: npt.NDArray[np.uint8], w: int, h: int) -> None:
        """A printed card in the top right, lettered at the sensor's scale and seen at this frame's: a still at the
        full sensor size reads it, the stream blurs it (the document check of a remote inspection)."""
        card = _document_card(self.settings.sensor_width or w, self.settings.seed, w)
        ch, cw = card.shape
        x, y = (w - cw - w // 40) // 2 * 2, (h // 5) // 2 * 2
        if x >= 0 and y + ch <= h:
            write_luma(img, w, h, x, y, card)

    def _stamp(self, img: npt.NDArray[np.uint8], w: int, h: int, index: int, wall_ns: int) -> None:
        """Burn in UTC time and frame counter on a black band, readable at any size."""
        scale = max(w / 1280.0, 0.3)
        lines = [iso_utc(wall_ns)[:23] + "Z", f"frame {index:08d}  seed {self.settings.seed}"]
        line_h = int(40 * scale) + 4
        band = min(h, line_h * len(lines) + 6)
        caption(img, w, h, 0, text_strip(w, band, lines, size_px=int(32 * scale), line_h=line_h,
                                         left=int(8 * scale) + 2))


#: What the synthetic document card says (a made-up permit; the seed's number on its last line).
DOCUMENT_LINES = ("EVIDENCE TEST DOCUMENT / DOCUMENT CHECK CARD", "Holder: Example Farm Cooperative Ltd.",
                  "Permit no. AGR-4608-2592-0042", "Valid from 2026-01-01 to 2027-12-31",
                  "Issued by: Provincial Agriculture Office", "Inputs: seed maize 120 kg; fertiliser NPK 15-15-15",
                  "Text at the sensor's scale: readable at full resolution only")


@functools.lru_cache(maxsize=4)
def _document_card(sensor_w: int, seed: int, w: int) -> npt.NDArray[np.uint8]:
    """The card as luma (dark text on white), drawn at ``sensor_w`` and scaled to a frame ``w`` wide."""
    from PIL import Image

    size = max(8, sensor_w // 300)  # 15 px letters on a 4608-pixel sensor: 4 px (unreadable) in a 1280 stream
    line_h = size * 3 // 2
    lines = [*DOCUMENT_LINES, f"Serial {seed:06d}"]
    width = size * 34
    strip = 255 - text_strip(width, line_h * len(lines) + size, lines, size_px=size, line_h=line_h, left=size // 2)
    if w != sensor_w:
        scaled = (max(2, round(width * w / sensor_w)), max(2, round(strip.shape[0] * w / sensor_w)))
        strip = np.asarray(Image.fromarray(strip, "L").resize(scaled, Image.Resampling.BOX), dtype=np.uint8)
    return strip[: strip.shape[0] // 2 * 2, : strip.shape[1] // 2 * 2]


TAPE = 100_003  # pixels of scrolling band before it repeats (prime: no short period with any frame width)


def _bounce(t: float) -> float:
    """Triangle wave in [0, 1] with period 2."""
    t = t % 2.0
    return t if t <= 1.0 else 2.0 - t

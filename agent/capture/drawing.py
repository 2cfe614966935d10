"""Drawing on I420 frames without OpenCV: filled rectangles in BT.601 colours and white-on-black text.

Used by the synthetic camera (its test pattern is drawn straight in the encoders' format) and by the
video burn-in. Text is rendered by Pillow's built-in scalable font into a grey strip and written into
the luma plane; the strip's chroma is set to neutral, so captions stay black and white.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

U8 = npt.NDArray[np.uint8]


def yuv(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited-range (Y, U, V) of a BGR colour."""
    b, g, r = bgr
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return round(y), round(u), round(v)


def planes(img: U8, width: int, height: int) -> tuple[U8, U8, U8]:
    """Views of the Y, U and V planes of an I420 array (height * 3 / 2, width)."""
    quarter = height // 4
    y = img[:height]
    u = img[height:height + quarter].reshape(height // 2, width // 2)
    v = img[height + quarter:height + 2 * quarter].reshape(height // 2, width // 2)
    return y, u, v


def fill(img: U8, width: int, height: int, box: tuple[int, int, int, int], bgr: tuple[int, int, int]) -> None:
    """Fill the rectangle (x0, y0, x1, y1), end exclusive, with a colour (chroma on the even grid)."""
    x0, y0, x1, y1 = (max(0, box[0]), max(0, box[1]), min(width, box[2]), min(height, box[3]))
    if x0 >= x1 or y0 >= y1:
        return
    yy, uu, vv = planes(img, width, height)
    cy, cu, cv = yuv(bgr)
    yy[y0:y1, x0:x1] = cy
    uu[y0 // 2:(y1 + 1) // 2, x0 // 2:(x1 + 1) // 2] = cu
    vv[y0 // 2:(y1 + 1) // 2, x0 // 2:(x1 + 1) // 2] = cv


@functools.lru_cache(maxsize=16)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, px))


def text_strip(width: int, height: int, lines: list[str], *, size_px: int, line_h: int, left: int) -> U8:
    """A (height, width) grey strip, black with the lines in white (0-255)."""
    strip = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(strip)
    font = _font(size_px)
    for i, text in enumerate(lines):
        draw.text((left, 3 + i * line_h), text, fill=255, font=font)
    return np.asarray(strip, dtype=np.uint8)


def caption(img: U8, width: int, height: int, top: int, strip: U8) -> None:
    """Write a grey strip into rows ``top``.. of an I420 frame: luma scaled to 16-235, chroma neutral."""
    top -= top % 2  # the chroma grid
    rows = min(strip.shape[0], height - top)
    yy, uu, vv = planes(img, width, height)
    yy[top:top + rows] = (16 + (strip[:rows].astype(np.uint16) * 219 + 127) // 255).astype(np.uint8)
    uu[top // 2:(top + rows + 1) // 2] = 128
    vv[top // 2:(top + rows + 1) // 2] = 128


def write_luma(img: U8, width: int, height: int, x: int, y: int, patch: U8) -> None:
    """Write a grey patch (0-255) at (x, y) of an I420 frame, luma scaled to 16-235, chroma neutral."""
    ph, pw = patch.shape
    yy, uu, vv = planes(img, width, height)
    yy[y:y + ph, x:x + pw] = (16 + (patch.astype(np.uint16) * 219 + 127) // 255).astype(np.uint8)
    uu[y // 2:(y + ph) // 2, x // 2:(x + pw) // 2] = 128
    vv[y // 2:(y + ph) // 2, x // 2:(x + pw) // 2] = 128

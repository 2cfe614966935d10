"""Verifier extension for stills: the picture's real pixel size is the size its signed record claims.

The core verifier proves a still's bytes are the ones the device sealed; this checker proves the record says
what those bytes are. For every ``still`` whose media is present and whose record states a pixel size (the
agent's always do) it reads the JPEG's frame header (no pixels are decoded) and reports a problem when the
record's ``width``/``height`` or the EXIF ``PixelXDimension``/``PixelYDimension`` differ from it, and when a
still sealed as full resolution (``resolution: "full"``) is not the sensor size it names (or, with a
digital-zoom ``region``, larger than the sensor). A compromised device could otherwise sign a small picture as
a "full-resolution document still". ``report.sections["stills"]`` lists each still's size and resolution.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import IO, Any

from agent.core.vocab import STILL_RESOLUTIONS

EXIF_IFD = 0x8769
PIXEL_X, PIXEL_Y = 0xA002, 0xA003


def jpeg_size(fh: IO[bytes]) -> tuple[tuple[int, int], tuple[Any, Any]]:
    """((width, height) from the image's frame header, (EXIF PixelXDimension, PixelYDimension) or Nones)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # nothing is decoded: the size is what counts
        with Image.open(fh) as img:  # reads the headers only (Pillow refuses a header of a decompression bomb)
            if img.format != "JPEG":
                raise ValueError(f"a {img.format} image, not a JPEG")
            exif = img.getexif().get_ifd(EXIF_IFD)
            return img.size, (exif.get(PIXEL_X), exif.get(PIXEL_Y))


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _claims(extra: dict[str, Any], where: str, problem: Callable[[str, str], None]) -> bool:
    """The record's own statements hold together; False when there is nothing sound to compare against."""
    resolution = extra.get("resolution", "stream")
    if resolution not in STILL_RESOLUTIONS:
        problem(where, f"still resolution {str(resolution)[:40]!r} is not one of {', '.join(STILL_RESOLUTIONS)}")
        return False
    w, h = _whole(extra.get("width")), _whole(extra.get("height"))
    if ("width" in extra or "height" in extra or resolution == "full") and (w is None or h is None):
        problem(where, "still record does not state its pixel size (width, height) as positive integers")
        return False
    if resolution != "full":
        return True
    sensor = extra["sensor"] if isinstance(extra.get("sensor"), dict) else {}
    sw, sh = _whole(sensor.get("width")), _whole(sensor.get("height"))
    if sw is None or sh is None:
        problem(where, "full-resolution still does not name its sensor size")
        return False
    assert w is not None and h is not None
    if extra.get("region") is None and (w, h) != (sw, sh):
        problem(where, f"still sealed as full resolution is {w}x{h}, not the {sw}x{sh} sensor it names")
    elif w > sw or h > sh:
        problem(where, f"still of {w}x{h} is larger than the {sw}x{sh} sensor it names")
    return True


def still_checker() -> Callable[[Any], None]:
    """A checker for agent.signing.verify.check(..., checkers=[still_checker()])."""

    def check(ctx: Any) -> None:
        report = ctx.report
        listed: list[dict[str, Any]] = []
        flagged = {p["item"] for p in report.problems}  # media already named (altered, missing): not read again
        for it in sorted(ctx.items, key=lambda i: i.seq):
            media = it.record.get("media") or {}
            if it.record.get("kind") != "still" or not media:
                continue
            where = f"seq {it.seq} ({it.name})"
            if where in flagged:
                continue
            extra = it.record.get("extra") or {}
            if not _claims(extra, where, report.problem):
                continue
            if "width" not in extra and "height" not in extra:
                continue  # the record claims no pixel size (an import, a test still): nothing to hold it to
            if media.get("type") not in (None, "image/jpeg"):
                continue  # PNG stills (an import) carry no JPEG header; their hash is checked by the core
            with ctx.source.open_media(it.folder, str(media.get("name", ""))) as fh:
                if fh is None:
                    continue  # missing or evicted: the core verifier says which
                try:
                    real, exif = jpeg_size(fh)
                except Exception as exc:  # any unreadable header is a finding, never a crash
                    report.problem(where, f"still is not a readable JPEG: {type(exc).__name__}: {str(exc)[:160]}")
                    continue
            claimed = (_whole(extra.get("width")), _whole(extra.get("height")))
            if claimed != (None, None) and claimed != real:
                report.problem(where, f"still is {real[0]}x{real[1]} pixels but its record claims "
                                      f"{claimed[0]}x{claimed[1]}")
            if exif != (None, None) and tuple(exif) != real:
                report.problem(where, f"still is {real[0]}x{real[1]} pixels but its EXIF says "
                                      f"{str(exif[0])[:12]}x{str(exif[1])[:12]}")
            listed.append({"seq": it.seq, "width": real[0], "height": real[1],
                           "resolution": extra.get("resolution", "stream")})
        report.sections["stills"] = listed

    return check

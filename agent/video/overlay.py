"""Optional burn-in of time, position, device and site id into video frames and stills.

The burn-in is a convenience for people watching footage; the signed record stays the evidence.
It is drawn on a copy, after analytics have seen the raw frame (a ticking clock would otherwise
hide a frozen feed from the frozen-feed check). I420 frames get it in their luma plane (no
conversion); BGR frames as grey.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from agent.capture.drawing import caption, text_strip
from agent.core.clock import iso_utc
from agent.core.model import Frame, GpsReading


def gps_text(gps: GpsReading | None) -> str:
    """Honest position text: a fix with its quality, or why there is none."""
    if gps is None:
        return "GPS: no reading"
    if gps.fix is None:
        return f"GPS: {gps.status}"
    f = gps.fix
    hdop = "" if f.hdop is None else f" hdop {f.hdop:.1f}"
    return f"GPS {f.lat:.6f},{f.lon:.6f} {f.mode}D{hdop}"


class Overlay:
    """Draws a two-line caption in the bottom-left corner, scaled to the frame height."""

    def __init__(self, device_id: str, site_id: str) -> None:
        self.device_id = device_id
        self.site_id = site_id

    def lines(self, frame: Frame, gps: GpsReading | None) -> list[str]:
        return [f"{iso_utc(frame.wall_ns)[:-4]}Z  #{frame.index}",
                f"{self.device_id} @ {self.site_id}  {gps_text(gps)}"]

    def apply(self, frame: Frame, gps: GpsReading | None) -> Frame:
        """A new Frame whose image carries the caption; the input frame is not modified."""
        img = np.ascontiguousarray(frame.image).copy()
        w, h = frame.width, frame.height
        scale = max(0.4, h / 720 * 0.7)
        line_h = int(26 * scale) + 6
        lines = self.lines(frame, gps)
        top = max(0, h - line_h * len(lines) - 6)
        top -= top % 2
        # a solid band behind the caption: readable on any background and at any size (no outline smear)
        strip = text_strip(w, h - top, lines, size_px=int(28 * scale), line_h=line_h, left=8)
        if frame.fmt == "yuv420p":
            caption(img, w, h, top, strip)
        elif img.ndim == 3:
            img[top:] = strip[:, :, None]
        else:
            img[top:] = strip
        return dataclasses.replace(frame, image=img)

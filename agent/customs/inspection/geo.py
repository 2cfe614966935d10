"""Where the device is against the registered site: point-in-polygon, distance to the boundary, and a
plain SVG site map (polygon, track, check-in fix) — no online map tiles, so it renders offline and in a PDF.

Positions are WGS84 degrees; over a site (hundreds of metres) a local equirectangular projection is
accurate to well under a GPS fix's error, which is all a boundary check needs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from agent.customs.i18n import N_

_M_PER_DEG = 111_320.0

LatLon = tuple[float, float]

MAP_LEGEND = N_("site (green), device track (blue), check-in fixes (red)")


@dataclass(frozen=True)
class LocationCheck:
    """The verdict on one sealed GPS fix."""

    inside: bool | None  # None: no fix, nothing to judge
    distance_m: float | None  # to the boundary: negative inside, positive outside
    quality: str  # "good", "fair", "poor", "no fix"
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"inside": self.inside, "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
                "quality": self.quality, "reasons": list(self.reasons)}


def parse_polygon(text: str) -> list[LatLon]:
    """``"lat,lon;lat,lon;..."`` (three or more vertices) -> list; ValueError names what is wrong."""
    points: list[LatLon] = []
    for i, part in enumerate(p for p in text.replace("\n", ";").split(";") if p.strip()):
        try:
            lat_s, lon_s = part.split(",")
            lat, lon = float(lat_s), float(lon_s)
        except ValueError:
            raise ValueError(f"vertex {i + 1} {part.strip()!r} is not 'lat,lon'") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or math.isnan(lat) or math.isnan(lon):
            raise ValueError(f"vertex {i + 1} ({lat}, {lon}) is out of range")
        points.append((lat, lon))
    if len(points) < 3:
        raise ValueError("a site polygon needs at least three 'lat,lon' vertices separated by ';'")
    return points


def _project(origin: LatLon, p: LatLon) -> tuple[float, float]:
    """Metres east, north of ``origin``."""
    return ((p[1] - origin[1]) * _M_PER_DEG * math.cos(math.radians(origin[0])), (p[0] - origin[0]) * _M_PER_DEG)


def contains(polygon: Sequence[LatLon], point: LatLon) -> bool:
    """Even-odd ray casting; a point on the boundary counts as inside."""
    x, y = point[1], point[0]
    inside = False
    for (ay, ax), (by, bx) in itertools.pairwise([*polygon, polygon[0]]):
        if (ay > y) != (by > y):
            cross = ax + (y - ay) * (bx - ax) / (by - ay)
            if x < cross:
                inside = not inside
            elif x == cross:
                return True
    return inside


def boundary_distance_m(polygon: Sequence[LatLon], point: LatLon) -> float:
    """Distance in metres from ``point`` to the nearest polygon edge (always >= 0)."""
    px, py = 0.0, 0.0
    best = math.inf
    for a, b in itertools.pairwise([*polygon, polygon[0]]):
        ax, ay = _project(point, a)
        bx, by = _project(point, b)
        dx, dy = bx - ax, by - ay
        t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(ax + t * dx - px, ay + t * dy - py))
    return best


def check_fix(polygon: Sequence[LatLon], gps: dict[str, object]) -> LocationCheck:
    """Judge a sealed record's ``gps`` block against the site: inside?, how far from the edge, fix quality."""
    if gps.get("fix") in (None, "none") or not isinstance(gps.get("lat"), int | float) \
            or not isinstance(gps.get("lon"), int | float):
        return LocationCheck(None, None, "no fix", (f"no GPS fix ({gps.get('status', 'unknown')})",))
    point = (float(gps["lat"]), float(gps["lon"]))  # type: ignore[arg-type]
    inside = contains(polygon, point)
    dist = boundary_distance_m(polygon, point)
    reasons: list[str] = []
    hdop = gps.get("hdop")
    sats = gps.get("satellites")
    age = gps.get("age_s")
    quality = "good"
    if gps.get("fix") != "3d":
        quality, reasons = "fair", [*reasons, f"{gps.get('fix')} fix only"]
    if isinstance(hdop, int | float) and hdop > 2.0:
        quality = "poor" if hdop > 5.0 else "fair"
        reasons.append(f"HDOP {hdop}")
    if isinstance(sats, int) and sats < 5:
        quality = "poor"
        reasons.append(f"{sats} satellites")
    if isinstance(age, int | float) and age > 2.0:
        quality = "poor"
        reasons.append(f"fix {age} s old")
    if gps.get("talker") == "sim":
        reasons.append("simulated receiver")
    # Uncertainty near the edge: ~5 m per unit of HDOP is the usual rule of thumb for consumer receivers.
    margin = 5.0 * float(hdop) if isinstance(hdop, int | float) else 10.0
    if dist < margin:
        reasons.append(f"within {margin:.0f} m of the boundary: position uncertainty covers both sides")
    return LocationCheck(inside, -dist if inside else dist, quality, tuple(reasons))


def site_map_svg(polygon: Sequence[LatLon], track: Sequence[LatLon], checks: Sequence[tuple[LatLon, str]] = (),
                 *, width: int = 520, height: int = 360, legend: str | None = MAP_LEGEND) -> str:
    """An SVG of the site polygon, the device's track and labelled check points, scaled to fit, north up;
    ``legend`` is the key's text (escaped here; ``None``: the page prints the key itself)."""
    pts = [*polygon, *track, *(p for p, _ in checks)]
    origin = (min(p[0] for p in pts), min(p[1] for p in pts))
    xy = [_project(origin, p) for p in pts]
    span_x = max(max(x for x, _ in xy), 1.0)
    span_y = max(max(y for _, y in xy), 1.0)
    pad = 24
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad - 16) / span_y)

    def pt(p: LatLon) -> tuple[float, float]:
        x, y = _project(origin, p)
        return round(pad + x * scale, 1), round(height - pad - y * scale, 1)

    poly = " ".join(f"{x},{y}" for x, y in map(pt, polygon))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="#f7f7f2" stroke="#999"/>',
             f'<polygon points="{poly}" fill="#cfe8c4" fill-opacity="0.7" stroke="#2e7d32" stroke-width="2"/>']
    if len(track) > 1:
        line = " ".join(f"{x},{y}" for x, y in map(pt, track))
        parts.append(f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="1.5"/>')
    for p in track[-1:]:
        x, y = pt(p)
        parts.append(f'<circle cx="{x}" cy="{y}" r="3" fill="#1565c0"/>')
    for p, label in checks:
        x, y = pt(p)
        parts.append(f'<circle cx="{x}" cy="{y}" r="5" fill="none" stroke="#c62828" stroke-width="2"/>'
                     f'<text x="{x + 7}" y="{y - 6}" fill="#c62828">{escape(label)}</text>')
    bar_m = _nice(span_x / 4)
    bar_px = bar_m * scale
    parts.append(f'<line x1="{pad}" y1="{height - 8}" x2="{pad + bar_px:.1f}" y2="{height - 8}" stroke="#333" '
                 f'stroke-width="2"/><text x="{pad + bar_px + 6:.1f}" y="{height - 4}">{bar_m:g} m</text>'
                 f'<text x="{width - pad}" y="{pad}" text-anchor="end">N ↑</text>')
    if legend:
        parts.append(f'<text x="{width - pad}" y="{height - 4}" text-anchor="end" fill="#555">{escape(legend)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice(x: float) -> float:
    """1, 2 or 5 times a power of ten, at most ``x``."""
    if x <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(x))
    return float(max(m * exp for m in (1, 2, 5) if m * exp <= x))

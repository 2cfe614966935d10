"""The zooms of a case: its sealed ``view_zoom`` events (digital zoom), as the timeline, report and CLI list them."""

from __future__ import annotations

import math
from typing import Any

from agent.core.vocab import VIEW_ZOOM, ZOOM_MAX
from agent.customs.i18n import N_
from agent.customs.inspection.evidence import Item

#: Why the view changed, in words (each of agent.core.vocab.ZOOM_REASONS).
REASONS = {"officer": N_("zoomed by the officer"), "reset": N_("reset by the officer"),
           "live_ended": N_("reset: the live view ended"), "camera_restored": N_("reset: the camera was reopened")}


def _region(value: Any) -> dict[str, float] | None:
    """The sealed region as four fractions and a factor, only when they make sense (else None: shown as unknown)."""
    if not isinstance(value, dict):
        return None
    try:
        x, y, w, h, f = (float(value[k]) for k in ("x", "y", "w", "h", "factor"))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h, f)) or not 1 <= f <= ZOOM_MAX + 1e-6:
        return None
    return {"x": round(x, 4), "y": round(y, 4), "w": round(w, 4), "h": round(h, 4), "factor": round(f, 2)}


def zoom_items(items: list[Item]) -> list[dict[str, Any]]:
    """One row per sealed zoom change: when (seal time), the region shown from then on, why, who asked, the sensor
    or frame pixels. Every value comes from a device-signed record; strings are cut short and pages escape them."""
    out = []
    for it in items:
        x = it.extra
        if it.kind != "event" or x.get("type") != VIEW_ZOOM:
            continue
        reason = str(x.get("reason") or "")[:40]
        raw = x.get("pixels")
        px: dict[str, Any] = raw if isinstance(raw, dict) else {}
        rect = [px.get(k) for k in ("x", "y", "w", "h")]
        out.append({"seq": it.seq, "at": it.wall, "record_hash": it.record_hash, "device": it.device,
                    "view": _region(x.get("view")), "reason": reason, "reason_label": REASONS.get(reason),
                    "officer": str(x.get("officer") or "")[:64] or None,
                    "space": str(px.get("space") or "")[:16],
                    "pixels": rect if all(isinstance(v, int) for v in rect) else None})
    return out


def zoom_line(z: dict[str, Any]) -> str:
    v = z["view"]
    what = "full view" if v is None or v["factor"] <= 1.0 else f"{v['factor']:g}x at ({v['x']:g}, {v['y']:g}) " \
        f"{v['w']:g} x {v['h']:g} of the full view"
    px = "" if z["pixels"] is None else f", {z['space']} pixels {z['pixels']}"
    who = f" ({z['officer']})" if z["officer"] else ""
    return f"ZOOM seq {z['seq']} at {z['at']}: {what}{px}; {z['reason']}{who}"

"""The conversation of a case: its sealed ``audio`` items (two-way voice) as the timeline, report and CLI list them."""

from __future__ import annotations

from typing import Any

from agent.core.vocab import AUDIO_DIRECTIONS
from agent.customs.inspection.evidence import Item

WHO = {"site": "the site's microphone", "officer": "the officer's voice on the site speaker"}


def audio_items(items: list[Item]) -> list[dict[str, Any]]:
    """One row per sealed audio item: when it starts (capture time), who spoke, how long, whether its file arrived.

    Every value comes from a device-signed record; strings are cut short and the page escapes them."""
    out = []
    for it in items:
        if it.kind != "audio":
            continue
        x = it.extra
        direction = x.get("direction") if x.get("direction") in AUDIO_DIRECTIONS else "unknown"
        ms = x.get("duration_ms")
        out.append({"seq": it.seq, "at": it.wall, "record_hash": it.record_hash, "direction": direction,
                    "who": WHO.get(str(direction), "unknown"), "session": str(x.get("session") or "")[:64],
                    "officer": str(x.get("officer") or "")[:64],
                    "duration_s": round(ms / 1000, 1) if isinstance(ms, int) and ms >= 0 else None,
                    "received": it.media is not None})
    return out


def audio_line(a: dict[str, Any]) -> str:
    dur = "?" if a["duration_s"] is None else f"{a['duration_s']:g} s"
    return (f"AUDIO seq {a['seq']} at {a['at']}: {dur} of {a['who']} (session {a['session'][:8]}…, officer "
            f"{a['officer']}){'' if a['received'] else ', file not received yet'}")

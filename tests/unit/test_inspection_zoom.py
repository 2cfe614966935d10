"""Sealed zoom changes in a case: listed with a readable label in the report's timeline and the CLI, device strings
escaped, nonsense regions shown as unknown (never drawn)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.core.vocab import EVENT_LABELS, VIEW_ZOOM, ZOOM_REASONS
from agent.customs.inspection import html as report_html
from agent.customs.inspection.evidence import Item, alerts
from agent.customs.inspection.model import Inspection
from agent.customs.inspection.zoom import REASONS, zoom_items, zoom_line

MARKUP = '<img src=x onerror="window.pwned=1">'


def item(seq: int, extra: dict[str, Any], kind: str = "event") -> Item:
    record = {"seq": seq, "kind": kind, "device_id": "cam-1",
              "captured": {"wall": f"2026-12-08T09:00:{seq:02d}.000Z", "wall_us": 1_796_720_400_000_000 + seq},
              "extra": extra}
    return Item(seq, kind, f"{seq:064x}", record, None)


def zoom(seq: int, reason: str, view: Any, officer: str | None = "officer-alice") -> Item:
    extra: dict[str, Any] = {"type": VIEW_ZOOM, "reason": reason, "view": view,
                             "pixels": {"space": "sensor", "x": 1152, "y": 648, "w": 2304, "h": 1296,
                                        "full_view": [0, 0, 4608, 2592]}}
    if officer is not None:
        extra["officer"] = officer
    return item(seq, extra)


ZOOMED = {"x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5, "factor": 2.0}
FULL = {"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "factor": 1.0}


def test_every_reason_has_words_and_the_event_a_label() -> None:
    assert set(REASONS) == set(ZOOM_REASONS)
    assert EVENT_LABELS[VIEW_ZOOM] == "View zoomed"


def test_zoom_rows_and_cli_lines() -> None:
    items = [item(1, {"type": "scene_change", "phase": "onset"}), zoom(2, "officer", ZOOMED),
             zoom(3, "live_ended", FULL, officer=None), zoom(4, "officer", {"x": "NaN", "factor": 99})]
    rows = zoom_items(items)
    assert [r["seq"] for r in rows] == [2, 3, 4]
    assert rows[0]["view"] == ZOOMED and rows[0]["pixels"] == [1152, 648, 2304, 1296]
    assert rows[2]["view"] is None  # not drawn from nonsense
    assert zoom_line(rows[0]) == ("ZOOM seq 2 at 2026-12-08T09:00:02.000Z: 2x at (0.25, 0.25) 0.5 x 0.5 of the full "
                                  "view, sensor pixels [1152, 648, 2304, 1296]; officer (officer-alice)")
    assert "full view" in zoom_line(rows[1]) and "live_ended" in zoom_line(rows[1])
    assert [a["type"] for a in alerts(items)] == ["scene_change"]  # a zoom is never an alert


@pytest.mark.parametrize("lang", ["en", "zh-en"])
def test_report_timeline_lists_zooms_in_words_and_escapes_device_strings(lang: str) -> None:
    insp = Inspection(case="C-1", enterprise="E", devices=["cam-1"], site="site-1",
                      polygon=[(31.0, 121.0), (31.0, 121.1), (31.1, 121.1)], start_seq=1, end_seq=9,
                      started_at="2026-12-08T09:00:00Z")
    items = [zoom(2, "officer", ZOOMED, officer=MARKUP), zoom(3, "reset", FULL)]
    out = report_html.render(insp, items, {"ok": True}, officer="officer-alice", officer_key_id="k" * 64, lang=lang)
    assert MARKUP not in out.html and "&lt;img src=x" in out.html
    if lang == "en":
        assert "view zoomed to 2.0x: region at 0.25, 0.25, 0.5 × 0.5 of the full view — zoomed by the officer" in \
            out.html
        assert "view back to the full view — reset by the officer" in out.html
        assert "sensor pixels 1152, 648, 2304, 1296" in out.html
    else:
        assert "画面放大至 2.0 倍" in out.html and "由执法人员恢复" in out.html

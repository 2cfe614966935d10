"""The segment checker's findings on hand-made record lists (signatures are the core verifier's job)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.signing.verify import Report
from agent.video.verify_segments import segment_checker

FRAME_US = 100_000


@dataclass
class Item:
    seq: int
    record: dict[str, Any]
    name: str = "x"
    folder: str = ""


@dataclass
class Ctx:
    items: list[Item]
    report: Report = field(default_factory=lambda: Report(path="t"))
    source: Any = None


def seg(seq: int, no: int, start_us: int, frames: int = 10, stream: str = "a") -> Item:
    mono = [i * FRAME_US for i in range(frames)]
    return Item(seq, {"kind": "segment", "captured": {"mono_us": start_us, "wall": "w"},
                      "end": {"mono_us": start_us + mono[-1], "wall": "w"},
                      "extra": {"stream": {"id": stream, "segment_no": no}, "frames": frames,
                                "frame_times": {"mono_us": mono, "wall_us": mono},
                                "duration_s": (mono[-1] + FRAME_US) / 1e6, "nominal_frame_us": FRAME_US,
                                "gps_coverage": 1.0, "events": [{"type": "frozen", "phase": "onset"}]}})


def run(items: list[Item]) -> Report:
    ctx = Ctx(items)
    segment_checker(media=False)(ctx)
    return ctx.report


def test_contiguous_segments_pass_and_are_summarised() -> None:
    rep = run([seg(1, 0, 0), Item(2, {"kind": "event"}), seg(3, 1, 10 * FRAME_US)])
    assert rep.problems == []
    assert [s["segment_no"] for s in rep.sections["segments"]] == [0, 1]
    assert rep.sections["segments"][0]["events"] == ["frozen:onset"]


def test_gap_missing_segment_and_new_stream_without_restart_are_problems() -> None:
    rep = run([seg(1, 0, 0), seg(2, 2, 10 * FRAME_US), seg(3, 3, 60 * FRAME_US),
               seg(4, 0, 70 * FRAME_US, stream="b")])
    text = " | ".join(p["problem"] for p in rep.problems)
    assert "segment(s) missing" in text and "time gap of 4.100 s" in text
    assert "new recording stream starts without a restart record" in text


def test_restart_between_streams_is_fine_and_bad_frame_lists_are_caught() -> None:
    bad = seg(5, 1, 109 * FRAME_US, stream="b")
    bad.record["extra"]["frames"] = 11
    rep = run([seg(1, 0, 0), Item(2, {"kind": "restart"}), seg(3, 0, 100 * FRAME_US, stream="b"), bad])
    assert [p["problem"] for p in rep.problems] == ["segment claims 11 frames but lists 10 frame times"]

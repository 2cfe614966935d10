"""Verifier extension for video: per-segment summary and continuity checks.

Plugs into :func:`agent.signing.verify.check` as a checker. For every ``segment`` record it reports
duration, frames, time span, GPS coverage and the events inside it (``report.sections["segments"]``),
and flags: frame times that disagree with the claimed count/duration, a media file whose frame count
differs from the record by more than one, a C2PA manifest that is missing, different or invalid,
and -- across segments -- a missing segment number or a time gap with no restart record between.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import IO, Any

from agent.core.errors import VerificationError
from agent.core.vocab import GAP_EVENTS

MAX_GAP_S = 2.0  # consecutive segments of one stream: the next starts one frame after the last


def count_video_packets(fh: IO[bytes]) -> int:
    """Frames in an MP4 by demuxing (no decoding): one H.264 packet per frame with bframes=0."""
    import av

    with av.open(fh, "r") as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size)


def c2pa_of_stream(fh: IO[bytes], mime: str) -> dict[str, Any]:
    from agent.signing.c2pa import read_manifest_stream

    return read_manifest_stream(fh, mime)


def _summary(it: Any) -> dict[str, Any]:
    r = it.record
    ex = r.get("extra") or {}
    return {"seq": it.seq, "stream": (ex.get("stream") or {}).get("id"),
            "segment_no": (ex.get("stream") or {}).get("segment_no"),
            "duration_s": ex.get("duration_s"), "frames": ex.get("frames"),
            "start": r["captured"]["wall"], "end": (r.get("end") or {}).get("wall"),
            "gps_coverage": ex.get("gps_coverage"),
            "events": [f"{e.get('type')}:{e.get('phase')}" for e in ex.get("events") or []],
            "c2pa": (ex.get("c2pa") or {}).get("manifest")}


def _check_record(where: str, it: Any, problem: Callable[[str, str], None]) -> None:
    r = it.record
    ex = r.get("extra") or {}
    times = ex.get("frame_times") or {}
    mono = times.get("mono_us") or []
    frames = ex.get("frames")
    if not isinstance(frames, int) or frames < 1 or len(mono) != frames or len(times.get("wall_us") or []) != frames:
        problem(where, f"segment claims {frames} frames but lists {len(mono)} frame times")
        return
    if any(b < a for a, b in itertools.pairwise(mono)):
        problem(where, "segment frame times run backwards")
    end = r.get("end")
    if end is None or abs(int(end["mono_us"]) - int(r["captured"]["mono_us"]) - mono[-1]) > 1:  # µs rounding
        problem(where, "segment end time does not match its last frame time")
    expected = (mono[-1] + int(ex.get("nominal_frame_us") or 0)) / 1e6
    if abs(float(ex.get("duration_s") or 0) - expected) > 1e-3:
        problem(where, f"segment duration {ex.get('duration_s')} s does not match its frame times ({expected:.3f} s)")


# Sealed events after which recording resumes later: the camera went away, the vault filled up, or storage
# failed (``storage_error``, captured at the first failure: segments lost meanwhile are named there). The
# recorder seals the segment that was open only once frames return, so such an event may precede it in the chain.


def _gap_times(items: Any, types: frozenset[str] = GAP_EVENTS) -> list[int]:
    """Monotonic capture times (µs) of the events that explain a pause in recording."""
    return [int(it.record["captured"]["mono_us"]) for it in items if it.record.get("kind") == "event"
            and (it.record.get("extra") or {}).get("type") in types]


def segment_checker(*, media: bool = True, c2pa: bool = True) -> Callable[[Any], None]:
    """A checker for agent.signing.verify.check(..., checkers=[segment_checker()])."""

    def check(ctx: Any) -> None:
        report = ctx.report
        summaries: list[dict[str, Any]] = []
        prev: Any = None
        restart_since_prev = False
        gaps = _gap_times(ctx.items)
        storage_errors = _gap_times(ctx.items, frozenset({"storage_error"}))  # segments lost: named there
        for it in sorted(ctx.items, key=lambda i: i.seq):
            kind = it.record.get("kind")
            if kind == "restart":
                restart_since_prev = True
                continue
            if kind != "segment":
                continue
            where = f"seq {it.seq} ({it.name})"
            summaries.append(_summary(it))
            _check_record(where, it, report.problem)
            if media:
                _check_media(ctx, it, where, c2pa)
            if prev is not None and not restart_since_prev:
                _check_continuity(prev, it, where, report.problem, gaps, storage_errors)
            prev, restart_since_prev = it, False
        report.sections["segments"] = summaries

    return check


def _check_continuity(prev: Any, cur: Any, where: str, problem: Callable[[str, str], None],
                      gaps: list[int] | None = None, storage_errors: list[int] | None = None) -> None:
    a, b = prev.record.get("extra") or {}, cur.record.get("extra") or {}
    sa, sb = a.get("stream") or {}, b.get("stream") or {}
    if sa.get("id") != sb.get("id"):
        problem(where, "a new recording stream starts without a restart record")
        return
    end = prev.record.get("end") or prev.record["captured"]
    start_us, end_us = int(cur.record["captured"]["mono_us"]), int(end["mono_us"])
    gap_s = (start_us - end_us) / 1e6
    explained = any(end_us <= t <= start_us for t in gaps or ())
    storage_gap = any(end_us <= t <= start_us for t in storage_errors or ())
    if sb.get("segment_no") != (sa.get("segment_no") or 0) + 1 and not storage_gap:
        problem(where, f"segment {sb.get('segment_no')} follows segment {sa.get('segment_no')}: "
                       "segment(s) missing")
    if (gap_s > MAX_GAP_S and not explained) or gap_s < 0:
        problem(where, f"time gap of {gap_s:.3f} s after seq {prev.seq} with no restart/gap record")


def _check_media(ctx: Any, it: Any, where: str, c2pa: bool) -> None:
    m = it.record.get("media") or {}
    ex = it.record.get("extra") or {}
    with ctx.source.open_media(it.folder, m.get("name", "")) as fh:
        if fh is None:
            return  # the core verifier already reports missing media
        try:
            n = count_video_packets(fh)
        except Exception as exc:  # any demux failure is a finding, not a crash
            ctx.report.problem(where, f"segment media is not a readable MP4: {exc}")
            return
        if abs(n - int(ex.get("frames") or 0)) > 1:
            ctx.report.problem(where, f"segment media has {n} frames, record claims {ex.get('frames')}")
        manifest = (ex.get("c2pa") or {}).get("manifest")
        if not (c2pa and manifest):
            return
        fh.seek(0)
        try:
            data = c2pa_of_stream(fh, "video/mp4")
        except VerificationError as exc:
            ctx.report.problem(where, f"C2PA: {exc}")
            return
        if data.get("active_manifest") != manifest:
            ctx.report.problem(where, "C2PA manifest in the file is not the one the record names")
        bad = [c for c in data["failure_codes"] if c != "signingCredential.untrusted"]
        if bad:
            ctx.report.problem(where, f"C2PA validation failed: {', '.join(bad)}")

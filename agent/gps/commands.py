"""CLI: ``nmea-check FILE`` (what a receiver log holds) and ``time-status`` (the clock's source now).

A technician points ``nmea-check`` at a capture from a new receiver before trusting it at a site:
it says how many lines were good or corrupt and when the fix came and went.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.core.clock import SystemClock
from agent.gps.nmea import Feed, NmeaParser
from agent.gps.timequality import TimeQualityProbe


def check_nmea(path: Path) -> dict[str, Any]:
    """Parse a log; returns counters, fix phases and first/last fix. OSError if unreadable."""
    parser = NmeaParser()
    phases: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        result = parser.feed(raw)
        if result not in (Feed.FIX, Feed.LOST):
            continue
        state = "fix" if result is Feed.FIX else "no fix"
        if not phases or phases[-1]["state"] != state:
            phases.append({"state": state, "line": number})
        if first is None and parser.fix is not None:
            first = parser.fix.as_record()
    stats = parser.stats
    return {
        "file": str(path), "lines": stats.lines, "sentences": stats.sentences, "corrupt": stats.corrupt,
        "bad_checksum": stats.bad_checksum, "malformed": stats.malformed, "junk": stats.junk,
        "ignored": stats.ignored, "foreign": stats.foreign, "fixes": stats.fixes, "phases": phases,
        "first_fix": first, "last_fix": parser.fix.as_record() if parser.fix else None,
    }


def cmd_nmea_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        report = check_nmea(path)
    except OSError as exc:
        print(f"error: cannot read NMEA log {str(path)!r}: {exc.strerror or exc}")
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{path}: {report['lines']} lines, {report['sentences']} good sentences, "
              f"{report['corrupt']} corrupt (checksum {report['bad_checksum']}, malformed {report['malformed']}, "
              f"junk {report['junk']}), {report['ignored']} comments/blank")
        for phase in report["phases"]:
            print(f"  line {phase['line']:>5}: {phase['state']}")
        for key in ("first_fix", "last_fix"):
            fix = report[key]
            print(f"  {key.replace('_', ' ')}: " + (
                "none" if fix is None else f"{fix['lat']}, {fix['lon']} {fix['fix']} hdop {fix['hdop']} "
                f"sats {fix['satellites']} at {fix['fix_time']} ({fix['talker']})"))
    if report["sentences"] == 0:
        if not args.json:
            print("error: no valid NMEA sentence in the file (wrong file, or wrong baud rate when captured?)")
        return 1
    return 0


def cmd_time_status(args: argparse.Namespace) -> int:
    probe = TimeQualityProbe(SystemClock())
    tq = probe.read()
    if args.json:
        print(json.dumps(tq.as_record()))
    else:
        err = "unknown" if tq.est_error_s is None else f"±{tq.est_error_s:.6f} s"
        print(f"time source: {tq.source}, synced: {'yes' if tq.synced else 'no'}, estimated error: {err}")
    return 0 if tq.synced else 1


def register(subparsers: Any) -> None:
    """Add ``nmea-check FILE [--json]`` and ``time-status [--json]``."""
    p = subparsers.add_parser("nmea-check", help="parse an NMEA receiver log: good/corrupt lines, fix phases")
    p.add_argument("file", help="NMEA log file (as captured from the receiver)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_nmea_check)
    t = subparsers.add_parser("time-status", help="time source now (chrony or kernel); exit 1 if unsynced")
    t.add_argument("--json", action="store_true", help="print a JSON object")
    t.set_defaults(func=cmd_time_status)

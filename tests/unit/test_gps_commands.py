"""CLI: nmea-check on real and garbage logs, time-status output shape."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agent.gps import commands

NMEA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nmea"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_nmea_check_real_coldboot_log(capsys: pytest.CaptureFixture[str]) -> None:
    log = NMEA_DIR / "gp-320fw-2019-04-07-coldboot.log"
    if not log.exists():
        pytest.skip(f"real receiver logs not available: {log.resolve()}")
    assert run(["nmea-check", str(log), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["corrupt"] == 48 and [p["state"] for p in report["phases"]] == ["fix", "no fix"]
    assert report["first_fix"]["fix"] == "3d" and report["last_fix"] is None
    assert run(["nmea-check", str(log)]) == 0
    assert "48 corrupt" in capsys.readouterr().out


def test_nmea_check_garbage_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\xff garbage\n$GPRMC,broken\n")
    assert run(["nmea-check", str(junk)]) == 1
    out = capsys.readouterr().out
    assert "2 corrupt" in out and "no valid NMEA sentence" in out
    assert run(["nmea-check", str(tmp_path / "missing.log")]) == 2
    assert "cannot read NMEA log" in capsys.readouterr().out


def test_time_status_prints_a_record(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run(["time-status", "--json"])  # the host's sync state varies: only the shape is checked
    rec = json.loads(capsys.readouterr().out)
    assert rec["source"] in ("gps", "ntp", "unsynced") and rc == (0 if rec["synced"] else 1)

"""Providers: freshness on the injected clock, log replay, a serial port (pty), simulated, disabled, config."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.core.clock import ManualClock, iso_utc
from agent.core.errors import GpsError
from agent.gps import DisabledGps, FixTracker, GpsConfig, open_gps
from agent.gps.nmea import Feed, nmea_checksum
from agent.gps.simulated import SimulatedGps
from agent.gps.sources import NmeaFileReplay, SerialGps, replay_delays
from tests.support.helpers import wait_for

NMEA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nmea"


def sentence(body: str) -> str:
    return f"${body}*{nmea_checksum(body):02X}"


RMC = sentence("GPRMC,030719.000,A,3747.0873,S,17518.8938,E,0.69,181.39,311214,,,A")
RMC_V = sentence("GPRMC,030720.000,V,,,,,,,311214,,,N")
GSV = sentence("GPGSV,1,1,01,17,72,207,32")


def test_tracker_ages_a_fix_out_on_the_monotonic_clock() -> None:
    clock = ManualClock()
    t = FixTracker(clock, max_age_s=2.0)
    assert t.reading().status == "no gps"
    assert t.feed_line(RMC) is Feed.FIX
    r = t.reading()
    assert r.status == "ok" and r.fix is not None and r.age_s == 0.0
    clock.advance(1.5)
    assert t.reading().age_s == 1.5
    t.feed_line(GSV)  # receiver still talks, but the position is not refreshed
    clock.advance(1.0)
    assert t.reading().fix is None and t.reading().status == "stale"
    clock.advance(2.0)
    assert t.reading().status == "no gps"  # silence: receiver gone
    t.feed_line(RMC)
    t.feed_line(RMC_V)
    assert t.reading().fix is None and t.reading().status == "no fix"


def test_tracker_max_age_is_configurable_and_checked() -> None:
    clock = ManualClock()
    t = FixTracker(clock, max_age_s=0.5)
    t.feed_line(RMC)
    clock.advance(0.6)
    assert t.reading().fix is None
    with pytest.raises(ValueError):
        FixTracker(clock, max_age_s=0)


def test_disabled() -> None:
    gps = DisabledGps()
    assert gps.reading().status == "disabled" and gps.reading().fix is None
    gps.close()
    gps.close()


@pytest.mark.parametrize(("name", "ends_with_fix"), [
    ("bu353s4.log", True), ("bt451.log", True), ("beidou-bd.log", True),
    ("ch-4711.log", False), ("bu353-glonass.log", False), ("gp-320fw-2019-04-07-coldboot.log", False),
])
def test_replay_real_log_flat_out(name: str, ends_with_fix: bool) -> None:
    path = NMEA_DIR / name
    if not path.exists():
        pytest.skip(f"real receiver logs not available: {path.resolve()}")
    clock = ManualClock()
    gps = NmeaFileReplay(clock, path, speed=0)
    try:
        assert gps.wait_done(10)
        r = gps.reading()
        assert (r.fix is not None) == ends_with_fix
        assert r.status == ("ok" if ends_with_fix else "no fix")
        clock.advance(2.5)
        assert gps.reading().fix is None and gps.reading().status == "no gps"  # EOF = receiver silent
        assert gps.stats.lines == len(path.read_bytes().splitlines())
    finally:
        gps.close()
        gps.close()


def test_replay_paces_by_sentence_time_and_clamps_gaps() -> None:
    lines = [RMC.encode(), GSV.encode(),
             sentence("GPRMC,030721.500,A,3747.0873,S,17518.8938,E,,,311214,,,A").encode(),
             sentence("GPRMC,040000.000,A,3747.0873,S,17518.8938,E,,,311214,,,A").encode(),
             sentence("GPRMC,035959.000,A,3747.0873,S,17518.8938,E,,,311214,,,A").encode()]
    assert [d for d, _ in replay_delays(lines)] == [0.0, 0.0, 2.0, 2.0, 0.0]


def test_replay_fast_loop_and_close_joins(tmp_path: Path) -> None:
    log = tmp_path / "a.nmea"
    log.write_text("\n".join(sentence(f"GPRMC,0307{s:02d}.000,A,3747.0873,S,17518.8938,E,,,311214,,,A")
                             for s in range(3)) + "\n")
    gps = NmeaFileReplay(ManualClock(), log, speed=200, loop=True)
    wait_for(lambda: gps.stats.lines > 6)
    gps.close()
    assert not any(t.name == "gps-replay" for t in threading.enumerate())


def test_replay_missing_file_is_a_gps_error(tmp_path: Path) -> None:
    with pytest.raises(GpsError, match="cannot read NMEA log"):
        NmeaFileReplay(ManualClock(), tmp_path / "nope.log")
    with pytest.raises(GpsError, match="speed"):
        NmeaFileReplay(ManualClock(), tmp_path, speed=-1)


def test_serial_receiver_on_a_pty() -> None:
    master, slave = os.openpty()
    clock = ManualClock()
    gps = SerialGps(clock, os.ttyname(slave), 9600)
    try:
        assert gps.port_open.wait(10)
        os.write(master, b"\x00\x00garbage\r\n" + (RMC + "\r\n").encode())
        wait_for(lambda: gps.reading().fix is not None)
        assert gps.stats.corrupt == 1
        os.write(master, (RMC_V + "\r\n").encode())
        wait_for(lambda: gps.reading().status == "no fix")
    finally:
        gps.close()
        os.close(master)
        os.close(slave)


def test_serial_missing_device_reads_no_gps_and_retries() -> None:
    gps = SerialGps(ManualClock(), "/dev/does-not-exist-gps", retry_s=0.05)
    try:
        wait_for(lambda: gps.last_error is not None)
        assert "cannot open GPS serial device" in (gps.last_error or "")
        assert gps.reading().status == "no gps"
    finally:
        gps.close()


def test_simulated_walk_is_deterministic_and_stays_near_the_site() -> None:
    def track(seed: int) -> list[tuple[float, float]]:
        clock = ManualClock()
        sim = SimulatedGps(clock, lat=31.23, lon=121.47, radius_m=20, step_m=2.0, seed=seed)
        out = []
        for _ in range(200):
            clock.advance(1.0)
            fix = sim.reading().fix
            assert fix is not None and fix.talker == "sim" and fix.mode == 3
            out.append((fix.lat, fix.lon))
        return out

    a, b = track(7), track(7)
    assert a == b and a != track(8)
    assert len(set(a)) > 50  # it moves
    for lat, lon in a:
        dy = (lat - 31.23) * 111_320
        dx = (lon - 121.47) * 111_320 * math.cos(math.radians(31.23))
        assert math.hypot(dx, dy) <= 20.01


def test_simulated_fix_time_follows_the_clock() -> None:
    clock = ManualClock(wall=1_790_000_000_250_000_000, mono=5_000_000_000)
    sim = SimulatedGps(clock, lat=1.0, lon=2.0)
    clock.advance(2.25)
    r = sim.reading()
    assert r.age_s == 0.25 and r.fix is not None
    assert r.fix.fix_time == iso_utc(clock.wall_ns() - 250_000_000) == "2026-09-21T14:13:22.250000Z"
    sim.close()
    assert sim.reading().status == "no gps"


def test_config_rejects_unknown_keys_and_needs_a_file() -> None:
    with pytest.raises(ValidationError, match="extra"):
        GpsConfig.model_validate({"source": "serial", "devise": "/dev/ttyS0"})
    with pytest.raises(ValidationError, match=r"gps\.file is required"):
        GpsConfig(source="file")
    with pytest.raises(ValidationError):
        GpsConfig(max_age_s=0)
    for name, field in GpsConfig.model_fields.items():
        assert field.description, name


def test_open_gps_for_each_source(tmp_path: Path) -> None:
    clock = ManualClock()
    log = tmp_path / "x.nmea"
    log.write_text(RMC + "\n")
    assert open_gps(GpsConfig(source="disabled"), clock).reading().status == "disabled"
    assert open_gps(GpsConfig(), clock).reading().fix is not None  # the demo default: simulated
    replay = open_gps(GpsConfig(source="file", file=log, speed=0), clock)
    gpsd = open_gps(GpsConfig(source="gpsd", gpsd_port=1, retry_s=0.05), clock)  # nothing listens there
    try:
        wait_for(lambda: replay.reading().fix is not None)
        assert gpsd.reading().status == "no gps"
    finally:
        replay.close()
        gpsd.close()

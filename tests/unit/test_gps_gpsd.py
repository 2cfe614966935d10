"""gpsd JSON decoding (no socket): TPV/SKY to fixes, no-fix and garbage handling."""

from __future__ import annotations

import json

from agent.core.clock import ManualClock
from agent.gps.gpsd import GpsdGps, sky_quality, tpv_to_fix

TPV3 = {"class": "TPV", "device": "/dev/pts/7", "mode": 3, "time": "2029-07-21T13:56:54.997Z",
        "lat": 55.717213333, "lon": 37.411995, "altHAE": 180.2, "altMSL": 165.6, "alt": 165.6}
TPV2 = {"class": "TPV", "mode": 2, "time": "2029-07-21T13:56:53.997Z", "lat": 55.7, "lon": 37.4, "alt": 9.0}
SKY = {"class": "SKY", "hdop": 1.3, "uSat": 6, "satellites": []}


def test_tpv_to_fix() -> None:
    fix = tpv_to_fix(TPV3, 1.3, 6)
    assert fix is not None and fix.mode == 3 and fix.alt_m == 165.6 and fix.talker == "gpsd"
    assert fix.fix_time == "2029-07-21T13:56:54.997Z" and (fix.hdop, fix.satellites) == (1.3, 6)
    two_d = tpv_to_fix(TPV2, None, None)
    assert two_d is not None and two_d.mode == 2 and two_d.alt_m is None  # a 2D fix has no altitude
    for bad in ({"mode": 1, "time": "x"}, {**TPV3, "lat": None}, {**TPV3, "lat": float("nan")},
                {**TPV3, "lat": 95.0}, {**TPV3, "time": ""}, {**TPV3, "mode": "3"}, {**TPV3, "lon": True}):
        assert tpv_to_fix(bad, None, None) is None


def test_sky_quality() -> None:
    assert sky_quality(SKY) == (1.3, 6)
    assert sky_quality({"hdop": 0.0, "satellites": [{"used": True}, {"used": False}, "x"]}) == (None, 1)
    assert sky_quality({}) == (None, None)


def test_reports_drive_the_reading() -> None:
    clock = ManualClock()
    gps = GpsdGps(clock, autostart=False)
    assert gps.reading().status == "no gps"
    gps.handle_line(json.dumps(SKY))
    assert gps.reading().status == "no fix"  # gpsd talks, no position yet
    gps.handle_line(json.dumps(TPV3).encode())
    r = gps.reading()
    assert r.status == "ok" and r.fix is not None and r.fix.hdop == 1.3 and r.fix.satellites == 6
    gps.handle_line(json.dumps({"class": "TPV", "mode": 1, "time": "2029-07-21T13:56:59.997Z"}))
    assert gps.reading().fix is None and gps.reading().status == "no fix"
    gps.handle_line(json.dumps(TPV2))
    r = gps.reading()
    assert r.fix is not None and r.fix.hdop is None  # the lost fix's SKY quality is not reused
    clock.advance(3)
    assert gps.reading().status == "no gps"


def test_garbage_is_counted_not_raised() -> None:
    gps = GpsdGps(ManualClock(), autostart=False)
    for line in (b"{not json", b"\xff\xfe", b"[1, 2]", b'"str"', b'{"class": "ERROR", "message": "bad"}'):
        gps.handle_line(line)
    assert gps.stats.bad == 4 and gps.stats.messages == 1
    assert gps.last_error == "gpsd error: bad"
    gps.close()
    gps.close()

"""Sensors.moment(): clock, GPS reading and time quality of one capture instant."""

from __future__ import annotations

import pytest

from agent.core.clock import ManualClock
from agent.core.model import TimeQuality
from agent.device.sensors import FixedTimeQuality, Sensors
from agent.gps import DisabledGps
from agent.gps.simulated import SimulatedGps


def test_moment_with_simulated_gps_has_zero_offset() -> None:
    clock = ManualClock()
    sensors = Sensors(clock, SimulatedGps(clock, lat=31.23, lon=121.47),
                      FixedTimeQuality(TimeQuality(source="ntp", synced=True, est_error_s=0.01)))
    clock.advance(3.4)
    m = sensors.moment()
    assert (m.wall_ns, m.mono_ns) == (clock.wall, clock.mono)
    assert m.gps.fix is not None and m.gps.status == "ok"
    assert m.time.source == "ntp" and m.time.gps_offset_s == pytest.approx(0.0, abs=1e-6)
    assert m.time.as_record()["gps_offset_s"] == 0.0
    sensors.close()
    assert sensors.moment().gps.status == "no gps"


def test_moment_without_gps_records_no_fix_and_no_offset() -> None:
    clock = ManualClock()
    for gps in (None, DisabledGps()):
        m = Sensors(clock, gps).moment()
        assert m.gps.fix is None and m.gps.as_record()["fix"] == "none"
        assert m.time.source == "unsynced" and not m.time.synced and m.time.gps_offset_s is None

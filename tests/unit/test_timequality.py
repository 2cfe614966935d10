"""Time quality from recorded chronyc/adjtimex results (never the host's own state), and clock alarms."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.core.clock import ManualClock
from agent.core.model import GpsFix, GpsReading
from agent.gps.timequality import (
    STA_UNSYNC,
    UNSYNCED,
    ClockWatch,
    KernelTime,
    TimeConfig,
    TimeQualityProbe,
    from_chrony,
    from_kernel,
    gps_offset_s,
    parse_chronyc_tracking,
    parse_utc_ns,
    read_adjtimex,
)

CHRONY_PPS = "50505300,PPS,1,1713564723.123456789,0.000000072,-0.000000011,0.000000195,-1.789,-0.000,0.016,"\
             "0.000000001,0.000011804,16.0,Normal\n"
CHRONY_NTP = "C0A80001,192.168.0.1,3,1713564723.000000000,-0.000250000,0.000012,0.000300,12.5,0.001,0.2,"\
             "0.020000000,0.001000000,64.0,Normal\n"
CHRONY_UNSYNC = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,"\
                "1.000000000,1.000000000,0.0,Not synchronised\n"
CHRONY_LOCAL = "7F7F0101,,10,1713564723.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,Normal\n"


def test_chrony_gps_refclock() -> None:
    tq = from_chrony(parse_chronyc_tracking(CHRONY_PPS))
    assert tq.source == "gps" and tq.synced
    assert tq.est_error_s == pytest.approx(0.000000072 + 0.000011804 + 0.0000000005, abs=1e-9)


def test_chrony_ntp_server() -> None:
    track = parse_chronyc_tracking(CHRONY_NTP)
    assert track.stratum == 3 and track.ref_name == "192.168.0.1" and not track.gps_refclock
    tq = from_chrony(track)
    assert tq.source == "ntp" and tq.synced and tq.est_error_s == pytest.approx(0.00025 + 0.001 + 0.01)


@pytest.mark.parametrize("out", [CHRONY_UNSYNC, CHRONY_LOCAL])
def test_chrony_unsynced_or_local_clock(out: str) -> None:
    assert from_chrony(parse_chronyc_tracking(out)) == UNSYNCED


@pytest.mark.parametrize("out", ["", "506 Cannot talk to daemon", "A,B,C,d,e,f,g,h,i,j,k,l,m,n"])
def test_chrony_garbage_is_a_value_error(out: str) -> None:
    with pytest.raises(ValueError, match="chronyc tracking"):
        parse_chronyc_tracking(out)


def test_kernel_states() -> None:
    synced = from_kernel(KernelTime(state=0, status=0x2001, esterror_us=1500, maxerror_us=30000))
    assert synced.source == "ntp" and synced.synced and synced.est_error_s == 0.0015
    assert from_kernel(KernelTime(state=5, status=0, esterror_us=0, maxerror_us=0)) == UNSYNCED
    assert from_kernel(KernelTime(state=0, status=STA_UNSYNC, esterror_us=0, maxerror_us=0)) == UNSYNCED


def test_real_adjtimex_call_returns_a_value_without_privilege() -> None:
    kt = read_adjtimex()  # only that the ctypes call works; the host's sync state varies
    assert kt is None or (kt.state >= 0 and kt.esterror_us >= 0)


def test_probe_prefers_chrony_then_kernel_and_caches() -> None:
    clock = ManualClock()
    calls: list[str] = []
    outputs = [CHRONY_PPS, None, "garbage"]

    def chronyc() -> str | None:
        calls.append("chronyc")
        return outputs.pop(0)

    def adjtimex() -> KernelTime | None:
        calls.append("adjtimex")
        return KernelTime(state=0, status=0, esterror_us=2000, maxerror_us=4000)

    probe = TimeQualityProbe(clock, TimeConfig(refresh_s=10), chronyc=chronyc, adjtimex=adjtimex)
    assert probe.read().source == "gps"
    clock.advance(5)
    assert probe.read().source == "gps" and calls == ["chronyc"]  # cached
    clock.advance(5)
    assert probe.read().source == "ntp" and calls[-2:] == ["chronyc", "adjtimex"]  # chrony gone: kernel
    clock.advance(10)
    assert probe.read().est_error_s == 0.002 and "chronyc tracking" in (probe.last_error or "")
    nothing = TimeQualityProbe(clock, TimeConfig(chrony=False, kernel=False))
    assert nothing.read() == UNSYNCED


def test_time_config_forbids_extra_and_describes_fields() -> None:
    with pytest.raises(ValidationError):
        TimeConfig.model_validate({"refresh": 3})
    assert all(f.description for f in TimeConfig.model_fields.values())


def fix_at(stamp: str) -> GpsFix:
    return GpsFix(lat=1.0, lon=2.0, mode=3, fix_time=stamp)


def test_gps_offset_accounts_for_the_fix_age() -> None:
    wall = parse_utc_ns("2026-11-22T09:00:01.500Z")
    assert wall is not None
    reading = GpsReading(fix=fix_at("2026-11-22T09:00:00.000Z"), age_s=0.5)
    assert gps_offset_s(reading, wall) == pytest.approx(-1.0)  # GPS says 1 s earlier than the system
    assert gps_offset_s(GpsReading(fix=None, status="no fix"), wall) is None
    assert gps_offset_s(GpsReading(fix=fix_at("not a time")), wall) is None
    assert parse_utc_ns("2026-11-22T09:00:00") is None  # no zone: refuse to guess


def test_clock_watch_reports_jumps_once() -> None:
    clock = ManualClock()
    watch = ClockWatch(clock, jump_threshold_s=1.0)
    assert watch.check() == []
    clock.advance(10)
    assert watch.check() == []
    clock.wall += 5_000_000_000  # someone set the clock 5 s forward
    clock.advance(1)
    [alarm] = watch.check()
    assert alarm.kind == "clock_jump" and alarm.value_s == pytest.approx(5.0)
    assert alarm.as_record() == {"alarm": "clock_jump", "value_s": 5.0, "threshold_s": 1.0}
    clock.advance(1)
    assert watch.check() == []
    clock.wall -= 3_000_000_000
    assert [a.value_s for a in watch.check()] == [pytest.approx(-3.0)]


def test_clock_watch_gps_disagreement_is_one_alarm_per_episode() -> None:
    watch = ClockWatch(ManualClock(), gps_threshold_s=0.5)
    assert watch.check(0.1) == []
    [alarm] = watch.check(-2.0)
    assert alarm.kind == "gps_disagree" and alarm.value_s == -2.0
    assert watch.check(-2.1) == [] and watch.check(None) == []  # still bad / unknown: no repeat
    assert watch.check(0.0) == []
    assert len(watch.check(3.0)) == 1


def test_clock_watch_observes_moments_with_their_own_times() -> None:
    from agent.core.model import NO_GPS, Moment, TimeQuality

    clock = ManualClock()
    watch = ClockWatch.from_config(clock, TimeConfig(jump_threshold_s=0.5, gps_threshold_s=0.2))
    tq = TimeQuality(source="ntp", synced=True, gps_offset_s=0.3)
    first = Moment(wall_ns=10**18, mono_ns=10**9, gps=NO_GPS, time=tq)
    assert [a.kind for a in watch.observe(first)] == ["gps_disagree"]
    later = Moment(wall_ns=10**18 + 2 * 10**9, mono_ns=10**9 + 10**9, gps=NO_GPS, time=tq)
    [jump] = watch.observe(later)
    assert jump.kind == "clock_jump" and jump.value_s == pytest.approx(1.0)

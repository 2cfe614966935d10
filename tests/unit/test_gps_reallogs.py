"""The parser on every real receiver log in ../shared/data/nmea (facts from its README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.core.model import GpsFix
from agent.gps.nmea import Feed, NmeaParser, NmeaStats

NMEA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nmea"


@dataclass
class Run:
    stats: NmeaStats
    phases: list[str]  # "fix" / "none" as the receiver went through them
    epochs: dict[str, GpsFix]  # final fix per fix_time, in order
    last: GpsFix | None
    feeds: dict[str, list[Feed]]  # results per talker+type prefix, e.g. "$BDGSA"


def parse_log(name: str) -> Run:
    path = NMEA_DIR / name
    if not path.exists():
        pytest.skip(f"real receiver logs not available: {path.resolve()} (they live beside the checkout)")
    parser = NmeaParser()
    phases: list[str] = []
    epochs: dict[str, GpsFix] = {}
    feeds: dict[str, list[Feed]] = {}
    for raw in path.read_bytes().splitlines():
        result = parser.feed(raw)
        feeds.setdefault(raw.strip()[:6].decode("latin-1"), []).append(result)
        if parser.fix is not None:
            epochs[parser.fix.fix_time] = parser.fix
        if result in (Feed.FIX, Feed.LOST):
            phase = "fix" if result is Feed.FIX else "none"
            if not phases or phases[-1] != phase:
                phases.append(phase)
    return Run(parser.stats, phases, epochs, parser.fix, feeds)


def first(run: Run) -> GpsFix:
    return next(iter(run.epochs.values()))


def near(fix: GpsFix, lat: float, lon: float, tol: float = 0.1) -> bool:
    return abs(fix.lat - lat) < tol and abs(fix.lon - lon) < tol


# name -> (good sentences, phases, location from the log's header, 2D/3D modes seen)
EXPECTED = {
    # README "checksums ok" counts lines starting with '$'; beidou-bd has one more with a space before it.
    "bu353s4.log": (90, ["fix"], (-37.8, 175.3), {3}),
    "beidou-bd.log": (79, ["none", "fix"], (31.25, 121.59), {3}),
    "beidou-gb.log": (68, ["none", "fix"], (31.25, 121.59), {3}),
    "ch-4711.log": (75, ["fix", "none"], (55.71, 37.41), {2}),
    "bu353-glonass.log": (112, ["fix", "none"], (55.69, 37.62), {3}),
    "magellan-ec10.log": (76, ["none", "fix", "none"], (44.09, -121.31), {2}),  # header: Bend, OR 44N 121W
    "bt451.log": (144, ["none", "fix"], (55.8, 23.6), {3}),
    # 91 README-good minus 5 that pass only when the checksum is read up to the first '*'.
    "gp-320fw-2019-04-07-coldboot.log": (86, ["fix", "none"], (48.15, 11.58), {3}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_log_phases_counts_and_position(name: str) -> None:
    good, phases, (lat, lon), modes = EXPECTED[name]
    run = parse_log(name)
    assert run.stats.sentences == good
    assert run.phases == phases
    assert near(first(run), lat, lon), first(run)
    assert {f.mode for f in run.epochs.values()} == modes
    assert (run.last is None) == (phases[-1] == "none")  # fix lost at the end is reported as no fix
    for fix in run.epochs.values():
        assert fix.fix_time.endswith("Z") and not (fix.lat == 0 and fix.lon == 0)
    if name != "gp-320fw-2019-04-07-coldboot.log":
        assert run.stats.corrupt == 0


def test_coldboot_corrupt_lines_are_counted() -> None:
    run = parse_log("gp-320fw-2019-04-07-coldboot.log")
    s = run.stats
    # README: 36 wrong checksums + 5 without '*' + 5 with text after a valid checksum + 2 fragments.
    assert s.corrupt == 48
    assert s.junk >= 2 and s.bad_checksum > 0 and s.malformed > 0  # NUL-byte line and fragments are junk
    assert s.lines == s.sentences + s.corrupt + s.ignored
    assert len(run.epochs) == 1 and first(run).fix_time.startswith("2019-04-07")  # before the reboot only
    assert run.last is None


def test_bu353s4_steady_3d_fix_with_quality() -> None:
    run = parse_log("bu353s4.log")
    assert len(run.epochs) == 25 and run.stats.lost == 0
    for fix in run.epochs.values():
        assert fix.talker == "GP" and fix.hdop == 1.1 and fix.satellites in (7, 8) and fix.alt_m is not None


def test_beidou_talkers_are_accepted() -> None:
    for name, prefix in (("beidou-bd.log", "$BDGSA"), ("beidou-gb.log", "$GBGSV")):
        run = parse_log(name)
        assert run.feeds[prefix] and Feed.CORRUPT not in run.feeds[prefix]
    bd = parse_log("beidou-bd.log")
    assert bd.stats.foreign == 12  # the proprietary $PSRFEPE lines
    assert {f.talker for f in bd.epochs.values()} == {"GN"}


def test_glonass_logs_lose_the_fix_at_the_end() -> None:
    ch = parse_log("ch-4711.log")
    assert {f.talker for f in ch.epochs.values()} == {"GN", "GL"}
    assert ch.feeds["$GPRMC"][-1] is Feed.LOST and ch.last is None
    bu = parse_log("bu353-glonass.log")
    rmc = bu.feeds["$GNRMC"]
    assert rmc == [Feed.FIX] * 9 + [Feed.LOST] * 10  # README: 9 RMC A, then 10 RMC V
    assert bu.last is None


def test_magellan_rmc_only_is_2d_without_quality() -> None:
    run = parse_log("magellan-ec10.log")
    for fix in run.epochs.values():
        assert fix.mode == 2 and fix.hdop is None and fix.satellites is None and fix.talker == "GP"

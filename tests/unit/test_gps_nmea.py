"""NMEA parser: sentence rules, corrupt-line accounting, and a fuzz run that must never crash."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.gps.nmea import Feed, NmeaParser, nmea_checksum


def sentence(body: str) -> str:
    return f"${body}*{nmea_checksum(body):02X}"


RMC_A = sentence("GPRMC,030719.000,A,3747.0873,S,17518.8938,E,0.69,181.39,311214,,,A")
GGA_1 = sentence("GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000")
GSA_3 = sentence("GPGSA,A,3,17,28,06,01,30,20,26,13,,,,,1.8,1.1,1.5")


def feed_all(parser: NmeaParser, *lines: str | bytes) -> list[Feed]:
    return [parser.feed(line) for line in lines]


def test_rmc_gga_gsa_make_a_3d_fix_with_quality() -> None:
    p = NmeaParser()
    assert feed_all(p, GGA_1, GSA_3, RMC_A) == [Feed.OTHER, Feed.OTHER, Feed.FIX]  # GGA waits for a date
    fix = p.fix
    assert fix is not None
    assert (round(fix.lat, 6), round(fix.lon, 6)) == (-37.784788, 175.314897)
    assert fix.mode == 3 and fix.hdop == 1.1 and fix.satellites == 8 and fix.alt_m == 59.9
    assert fix.fix_time == "2014-12-31T03:07:19.000Z" and fix.talker == "GP"


def test_gga_uses_last_known_date_and_rolls_over_midnight() -> None:
    p = NmeaParser()
    p.feed(sentence("GNRMC,235959.000,A,5541.1955,N,03737.2872,E,0.60,301.29,260514,,,A"))
    assert p.feed(sentence("GNGGA,000000.000,5541.1956,N,03737.2877,E,1,5,4.87,66.2,M,14.5,M,,")) is Feed.FIX
    assert p.fix is not None and p.fix.fix_time == "2014-05-27T00:00:00.000Z"
    assert p.fix.mode == 2  # no GSA seen: only 2D is proven


@pytest.mark.parametrize("loss", [
    sentence("GPRMC,030720.000,V,,,,,,,311214,,,N"),
    sentence("GPGGA,030720.000,,,,,0,00,,,M,,M,,"),
    sentence("GPGSA,A,1,,,,,,,,,,,,,,,"),
    sentence("GNGNS,030720.000,,,,,NNNN,00,,,0.0,,0000"),
])
def test_any_no_fix_sentence_drops_the_fix_at_once(loss: str) -> None:
    p = NmeaParser()
    feed_all(p, GGA_1, GSA_3, RMC_A)
    assert p.fix is not None
    assert p.feed(loss) is Feed.LOST
    assert p.fix is None


def test_quality_of_a_lost_fix_does_not_decorate_the_next() -> None:
    p = NmeaParser()
    feed_all(p, sentence("GPGSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"), RMC_A)
    assert p.fix is not None and p.fix.hdop is None and p.fix.mode == 2


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "BD", "GB"])
def test_accepted_talkers(talker: str) -> None:
    p = NmeaParser()
    assert p.feed(sentence(f"{talker}RMC,081411.000,A,5541.1955,N,03737.2872,E,0.60,301.29,260514,,,A")) is Feed.FIX
    assert p.fix is not None and p.fix.talker == talker


def test_gns_gives_a_fix_and_a_void_rmc_date_is_not_trusted() -> None:
    p = NmeaParser()
    p.feed(sentence("GNRMC,074155.799,V,,,,,,,250215,,,N"))  # cold-boot receivers print garbage dates here
    line = sentence("GNGNS,074155.799,3114.8770,N,12135.2463,E,AANN,07,1.1,196.4,7.7,,0000")
    assert p.feed(line) is Feed.OTHER and p.fix is None  # no trusted date yet: no recordable fix
    p.feed(sentence("GPZDA,074155.799,25,02,2015,00,00"))
    line = sentence("GNGNS,074156.799,3114.8770,N,12135.2463,E,AANN,07,1.1,196.4,7.7,,0000")
    assert p.feed(line) is Feed.FIX
    assert p.fix is not None and p.fix.satellites == 7 and p.fix.hdop == 1.1 and p.fix.alt_m == 196.4


def test_lower_case_checksum_and_crlf_are_fine() -> None:
    p = NmeaParser()
    assert p.feed(b"$GPRMC,205206.00,A,4405.556,N,12118.398,W,000.0,000.0,090605,0.0,E*49\r\n") is Feed.FIX
    assert p.feed("$GPRMC,205150.00,V,,,,,,,,,,,V*4a") is Feed.LOST


@pytest.mark.parametrize(("line", "counter"), [
    (RMC_A[:-2] + "00", "bad_checksum"),
    (RMC_A.split("*")[0], "malformed"),  # no checksum
    (RMC_A[:30], "malformed"),  # truncated
    ("$GPGSA,A,1,,,,,,,,,,,,,,,*1E$GPRMC,235949.00,V,0000.0000,N,00000.0000,E,,,161206,,,N*44", "malformed"),
    ("$GPGSA,A,1,,,,,,,,,,,,,,,*1E*43", "malformed"),  # valid up to the first '*', junk after it
    ("$GPRMC,000346.03,A,4808\x00\x00\x00\x00        ", "junk"),
    (",20,10,090,41*70", "junk"),
    (b"\xff\xfe$GPRMC", "junk"),
    ("$" + "A" * 300, "junk"),
    (sentence("GPN,00000.0000,E,0,00,0.0,,M,,M,,"), "malformed"),  # good checksum, no such sentence
    (sentence("GPGSA,A,7,,,,,,,,,,,,,,,"), "malformed"),  # fix type out of range
])
def test_corrupt_lines_are_skipped_and_counted(line: str | bytes, counter: str) -> None:
    p = NmeaParser()
    feed_all(p, GGA_1, GSA_3, RMC_A)
    before = p.fix
    assert p.feed(line) is Feed.CORRUPT
    assert getattr(p.stats, counter) == 1 and p.stats.corrupt == 1
    assert p.fix == before  # garbage neither makes nor breaks a fix


def test_zero_zero_is_not_a_position() -> None:
    p = NmeaParser()
    assert p.feed(sentence("GPRMC,000425.00,A,0000.0000,N,00000.0000,E,,,220899,,,N")) is Feed.LOST
    assert p.fix is None


def test_comments_blank_and_foreign_sentences() -> None:
    p = NmeaParser()
    assert feed_all(p, "# header", "", "   ", sentence("PSRFEPE,074150.799,V,,,,,")) == [
        Feed.IGNORED, Feed.IGNORED, Feed.IGNORED, Feed.OTHER]
    s = p.stats
    assert (s.ignored, s.foreign, s.sentences, s.corrupt) == (3, 1, 1, 0)


def test_stats_is_a_frozen_snapshot() -> None:
    p = NmeaParser()
    snap = p.stats
    p.feed(RMC_A)
    assert snap.lines == 0 and p.stats.lines == 1
    with pytest.raises(AttributeError):
        snap.lines = 5  # type: ignore[misc]


# -- fuzzing ------------------------------------------------------------------------------

GOOD = [RMC_A, GGA_1, GSA_3, sentence("GNGNS,074156.799,3114.8770,N,12135.2463,E,AANN,07,1.1,196.4,7.7,,0000"),
        sentence("GPZDA,152505.00,09,12,2009,00,00")]


def check_invariant(p: NmeaParser) -> None:
    s = p.stats
    assert s.lines == s.sentences + s.corrupt + s.ignored


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=120), st.text(max_size=120)), max_size=8))
def test_fuzz_random_lines_never_crash(lines: list[str | bytes]) -> None:
    p = NmeaParser()
    for line in lines:
        assert isinstance(p.feed(line), Feed)
    check_invariant(p)
    if p.fix is not None:
        assert -90 <= p.fix.lat <= 90 and -180 <= p.fix.lon <= 180


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(GOOD), st.data())
def test_fuzz_one_changed_character_is_always_counted(good: str, data: st.DataObject) -> None:
    body_end = good.index("*")
    pos = data.draw(st.integers(1, body_end - 1))
    char = data.draw(st.sampled_from(string.printable.strip() + " \x00"))
    if char == good[pos]:
        return
    garbled = good[:pos] + char + good[pos + 1:]
    p = NmeaParser()
    assert p.feed(garbled) is Feed.CORRUPT
    assert p.stats.corrupt == 1
    check_invariant(p)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(GOOD), st.integers(1, 80))
def test_fuzz_truncation_is_counted(good: str, cut: int) -> None:
    p = NmeaParser()
    result = p.feed(good[: max(1, len(good) - cut)])
    assert result is Feed.CORRUPT and p.stats.corrupt == 1

"""NMEA 0183 parsing with pynmea2: a small state machine that turns sentences into fixes.

Why a state machine: a receiver spreads one epoch over several sentences (GGA has satellites and
altitude, GSA has the 2D/3D mode and HDOP, RMC has the date). The parser merges them, but any
sentence that says "no fix" (RMC status V, GGA quality 0, GSA mode 1, GNS mode all N) drops the
fix at once, so evidence never carries a position the receiver no longer vouches for.

Every line that is not a well-formed sentence is skipped and counted, never raised: a serial
line from a receiver in cold boot is full of truncated and garbled text.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, replace
from typing import Any

import pynmea2

from agent.core.model import GpsFix

#: GPS, multi-constellation, GLONASS, BeiDou (both talker ids in use) and Galileo.
ACCEPTED_TALKERS = frozenset({"GP", "GN", "GL", "BD", "GB", "GA"})
MAX_LINE = 256  # NMEA says 82; real receivers overrun a little, nothing sane is longer
_SENTENCE = re.compile(r"^[$!]([A-Z0-9]{2,12}),([^*$!]*)\*([0-9A-Fa-f]{2})$")  # one sentence, one '*'
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


class Feed(enum.Enum):
    """What one line did to the parser state."""

    FIX = "fix"  # a position sentence produced or refreshed a fix
    LOST = "lost"  # the receiver said it has no fix
    OTHER = "other"  # a good sentence that does not change the fix (GSV, ZDA, proprietary...)
    CORRUPT = "corrupt"  # skipped and counted
    IGNORED = "ignored"  # blank line or a '#' comment (log-file headers)


@dataclass(frozen=True)
class NmeaStats:
    """Counters of what the parser saw; ``corrupt`` is everything skipped as bad data."""

    lines: int = 0
    sentences: int = 0  # well-formed sentences with a good checksum that pynmea2 parsed
    fixes: int = 0  # position sentences that produced a fix
    lost: int = 0  # sentences that said "no fix"
    bad_checksum: int = 0
    malformed: int = 0  # truncated, no checksum, two sentences run together, unparseable fields
    junk: int = 0  # not a sentence at all: NUL bytes, binary, fragments without '$'
    ignored: int = 0  # blank lines and '#' comments
    foreign: int = 0  # good sentences from talkers we do not use (or proprietary $P...)

    @property
    def corrupt(self) -> int:
        return self.bad_checksum + self.malformed + self.junk


def nmea_checksum(body: str) -> int:
    """XOR of the characters between '$' and '*'."""
    value = 0
    for ch in body:
        value ^= ord(ch)
    return value


def _float(text: Any) -> float | None:
    try:
        return None if text in (None, "") else float(text)
    except (TypeError, ValueError):
        return None


def _int(text: Any) -> int | None:
    try:
        return None if text in (None, "") else int(text)
    except (TypeError, ValueError):
        return None


def _position(msg: Any) -> tuple[float, float] | None:
    """Latitude/longitude only when every field is present and in range (pynmea2 returns 0.0 for empty)."""
    if not (msg.lat and msg.lon and msg.lat_dir in ("N", "S") and msg.lon_dir in ("E", "W")):
        return None
    try:
        lat, lon = float(msg.latitude), float(msg.longitude)
    except (TypeError, ValueError, AttributeError):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0.0 and lon == 0.0):
        return None  # (0, 0) is the default position receivers print before they know better
    return lat, lon


class NmeaParser:
    """Feed lines one by one; ``fix`` is the current fix or None. Not thread-safe (one reader)."""

    def __init__(self) -> None:
        self._c: dict[str, int] = dict.fromkeys(NmeaStats.__dataclass_fields__, 0)
        self._fix: GpsFix | None = None
        self._date: dt.date | None = None
        self._date_time: dt.time | None = None  # time of day that went with _date
        self._mode: int | None = None  # last GSA mode (1, 2, 3)
        self._hdop: float | None = None
        self._sats: int | None = None
        self._alt: float | None = None
        self._epoch_hdop: float | None = None  # HDOP from the last GGA/GNS
        self._epoch: dt.time | None = None  # time of the last GGA (its sats/alt belong to it)

    @property
    def fix(self) -> GpsFix | None:
        return self._fix

    @property
    def stats(self) -> NmeaStats:
        return NmeaStats(**self._c)

    def feed(self, line: str | bytes) -> Feed:
        """Parse one line (with or without its line ending)."""
        self._c["lines"] += 1
        text = line.decode("latin-1") if isinstance(line, bytes) else line
        text = text.strip(" \t\r\n")
        if not text or text.startswith("#"):
            self._c["ignored"] += 1
            return Feed.IGNORED
        if len(text) > MAX_LINE or not _PRINTABLE.match(text) or text[0] not in "$!":
            return self._bad("junk")
        m = _SENTENCE.match(text)
        if m is None:  # truncated, no checksum, or two sentences (or junk) run together
            return self._bad("malformed")
        body = text[1 : text.index("*")]
        if nmea_checksum(body) != int(m.group(3), 16):
            return self._bad("bad_checksum")
        try:
            msg = pynmea2.parse(text, check=True)
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError):
            return self._bad("malformed")
        self._c["sentences"] += 1
        talker = getattr(msg, "talker", None)
        if talker not in ACCEPTED_TALKERS:
            self._c["foreign"] += 1
            return Feed.OTHER
        try:
            result = self._apply(msg, talker)
        except (ValueError, TypeError, AttributeError, OverflowError):
            self._c["sentences"] -= 1
            return self._bad("malformed")
        if result is Feed.FIX:
            self._c["fixes"] += 1
        elif result is Feed.LOST:
            self._c["lost"] += 1
        return result

    def _bad(self, kind: str) -> Feed:
        self._c[kind] += 1
        return Feed.CORRUPT

    def _lose(self) -> Feed:
        """Drop the fix and everything that described it, so no attribute outlives its epoch."""
        self._fix = None
        self._mode = self._hdop = self._sats = self._alt = self._epoch_hdop = None
        self._epoch = None
        return Feed.LOST

    # -- per-sentence rules -------------------------------------------------------------------

    def _apply(self, msg: Any, talker: str) -> Feed:
        kind = msg.sentence_type
        if kind == "RMC":
            return self._rmc(msg, talker)
        if kind == "GGA":
            return self._gga(msg, talker)
        if kind == "GSA":
            return self._gsa(msg)
        if kind == "GNS":
            return self._gns(msg, talker)
        if kind == "ZDA":
            if msg.timestamp is not None and msg.day and msg.month and msg.year:
                self._set_date(dt.date(int(msg.year), int(msg.month), int(msg.day)), msg.timestamp)
            return Feed.OTHER
        return Feed.OTHER

    def _rmc(self, msg: Any, talker: str) -> Feed:
        if msg.status != "A":
            return self._lose()
        pos = _position(msg)
        if pos is None or msg.timestamp is None or msg.datestamp is None:
            return self._lose()  # "valid" but without a position or time: not a fix we can record
        self._set_date(msg.datestamp, msg.timestamp)
        same_epoch = self._epoch == msg.timestamp
        return self._emit(pos, msg.timestamp, talker, sats=self._sats if same_epoch else None,
                          alt=self._alt if same_epoch else None,
                          hdop=self._epoch_hdop if same_epoch else None)

    def _gga(self, msg: Any, talker: str) -> Feed:
        quality = _int(msg.gps_qual)
        if not quality:
            return self._lose()
        pos = _position(msg)
        if pos is None or msg.timestamp is None:
            return self._lose()
        self._epoch = msg.timestamp
        self._sats = _int(msg.num_sats)
        self._alt = _float(msg.altitude)
        self._epoch_hdop = _float(msg.horizontal_dil)
        return self._emit(pos, msg.timestamp, talker, sats=self._sats, alt=self._alt, hdop=self._epoch_hdop)

    def _gsa(self, msg: Any) -> Feed:
        mode = _int(msg.mode_fix_type)
        if mode not in (1, 2, 3):
            raise ValueError("GSA fix type out of range")
        self._mode = mode
        self._hdop = _float(msg.hdop)
        if mode == 1:
            return self._lose()
        if self._fix is not None and (self._fix.mode != mode or self._fix.hdop is None):
            self._fix = replace(self._fix, mode=3 if mode == 3 else 2, hdop=self._fix.hdop or self._hdop)
        return Feed.OTHER

    def _gns(self, msg: Any, talker: str) -> Feed:
        indicator = str(msg.mode_indicator or "")
        if not indicator or set(indicator) <= {"N"}:
            return self._lose()
        pos = _position(msg)
        if pos is None or msg.timestamp is None:
            return self._lose()
        self._epoch = msg.timestamp
        self._sats = _int(msg.num_sats)
        self._alt = _float(msg.altitude)
        self._epoch_hdop = _float(msg.hdop)
        return self._emit(pos, msg.timestamp, talker, sats=self._sats, alt=self._alt, hdop=self._epoch_hdop)

    # -- helpers ------------------------------------------------------------------------------

    def _set_date(self, date: dt.date, time: dt.time) -> None:
        self._date, self._date_time = date, time

    def _fix_time(self, time: dt.time) -> str | None:
        """UTC of the fix; GGA/GNS carry no date, so use the last known one (rolling over midnight)."""
        if self._date is None or self._date_time is None:
            return None
        date = self._date
        if _seconds(time) < _seconds(self._date_time) - 12 * 3600:
            date += dt.timedelta(days=1)  # GGA just after midnight, before the next RMC
        stamp = dt.datetime.combine(date, time.replace(tzinfo=None))
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def _emit(self, pos: tuple[float, float], time: dt.time, talker: str, *,
              sats: int | None, alt: float | None, hdop: float | None) -> Feed:
        fix_time = self._fix_time(time)
        if fix_time is None:
            return Feed.OTHER  # a position without a date is not yet a recordable fix
        # Mode: only GSA says 3D; without it a position proves 2D and nothing more is claimed.
        mode = self._mode if self._mode in (2, 3) else 2
        prev = self._fix
        if prev is not None and prev.fix_time == fix_time:  # same epoch: keep what others added
            sats = sats if sats is not None else prev.satellites
            alt = alt if alt is not None else prev.alt_m
            hdop = hdop if hdop is not None else prev.hdop
        self._fix = GpsFix(
            lat=pos[0], lon=pos[1], mode=3 if mode == 3 else 2, fix_time=fix_time, alt_m=alt,
            hdop=hdop if hdop is not None else self._hdop, satellites=sats, talker=talker,
        )
        return Feed.FIX


def _seconds(time: dt.time) -> float:
    return time.hour * 3600 + time.minute * 60 + time.second + time.microsecond / 1e6

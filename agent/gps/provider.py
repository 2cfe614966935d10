"""The GpsProvider contract and the freshness bookkeeping every NMEA-fed provider shares.

A provider answers ``reading()`` instantly from memory: the reader thread pushes fixes in, the
capture path pulls a ``GpsReading`` out. Freshness is judged on the injected monotonic clock,
so a fix older than ``max_age_s`` is never handed out as if it were current.
"""

from __future__ import annotations

import threading
from typing import Protocol

from agent.core.clock import Clock
from agent.core.model import GpsFix, GpsReading
from agent.gps.nmea import Feed, NmeaParser, NmeaStats


class GpsProvider(Protocol):
    """Anything that can say where we are right now (or why it cannot)."""

    def reading(self) -> GpsReading: ...

    def close(self) -> None: ...


class DisabledGps:
    """GPS switched off in the configuration: every reading says so."""

    def reading(self) -> GpsReading:
        return GpsReading(fix=None, status="disabled")

    def close(self) -> None:
        return None


class FixTracker:
    """Thread-safe latest-fix holder with monotonic ages.

    Status when there is no fresh fix:
    - "no fix": the receiver talks but says it has no fix (or has not had one yet);
    - "stale": the receiver talks but has not refreshed its position for ``max_age_s``;
    - "no gps": nothing good has arrived from the receiver for ``max_age_s`` (unplugged, dead, EOF).
    """

    def __init__(self, clock: Clock, max_age_s: float = 2.0) -> None:
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        self._clock = clock
        self._max_age_ns = int(max_age_s * 1e9)
        self._lock = threading.Lock()
        self._fix: GpsFix | None = None
        self._fix_mono: int | None = None
        self._data_mono: int | None = None
        self._parser = NmeaParser()

    # -- writers (reader thread) -----------------------------------------------------------

    def feed_line(self, line: str | bytes) -> Feed:
        """Parse one NMEA line and update the fix from it."""
        with self._lock:
            result = self._parser.feed(line)
            if result in (Feed.FIX, Feed.LOST, Feed.OTHER):
                self._data_mono = self._clock.mono_ns()
            if result is Feed.FIX:
                self._fix, self._fix_mono = self._parser.fix, self._data_mono
            elif result is Feed.LOST:
                self._fix = self._fix_mono = None
            elif result is Feed.OTHER and self._parser.fix is not None and self._fix is not None:
                self._fix = self._parser.fix  # e.g. GSA refined mode/HDOP of the current epoch
            return result

    def set_fix(self, fix: GpsFix | None) -> None:
        """For sources that deliver decoded fixes (gpsd): a fix, or None for "no fix"."""
        with self._lock:
            now = self._clock.mono_ns()
            self._data_mono = now
            self._fix, self._fix_mono = fix, (now if fix is not None else None)

    def heard(self) -> None:
        """The source is alive even though it said nothing about the position."""
        with self._lock:
            self._data_mono = self._clock.mono_ns()

    # -- reader (capture path) -------------------------------------------------------------

    @property
    def stats(self) -> NmeaStats:
        with self._lock:
            return self._parser.stats

    def reading(self) -> GpsReading:
        with self._lock:
            now = self._clock.mono_ns()
            if self._fix is not None and self._fix_mono is not None:
                age = now - self._fix_mono
                if 0 <= age <= self._max_age_ns:
                    return GpsReading(fix=self._fix, status="ok", age_s=age / 1e9)
            talking = self._data_mono is not None and now - self._data_mono <= self._max_age_ns
            if not talking:
                return GpsReading(fix=None, status="no gps")
            return GpsReading(fix=None, status="stale" if self._fix is not None else "no fix")

"""Sensors: everything the sealer records about one capture instant, read together.

The clock is read first and the GPS and time source right after, so the record describes the
instant of capture, not the instant of sealing (a ProofMode lesson).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from agent.core.clock import Clock
from agent.core.model import NO_GPS, Moment, TimeQuality
from agent.gps.provider import GpsProvider
from agent.gps.timequality import UNSYNCED, gps_offset_s


class TimeQualitySource(Protocol):
    def read(self) -> TimeQuality: ...


class FixedTimeQuality:
    """A constant time quality (tests, demos, or hosts where it cannot be probed)."""

    def __init__(self, quality: TimeQuality = UNSYNCED) -> None:
        self.quality = quality

    def read(self) -> TimeQuality:
        return self.quality


class Sensors:
    """``moment()`` -> Moment(wall, mono, GPS reading, time quality with the GPS-vs-system offset)."""

    def __init__(self, clock: Clock, gps: GpsProvider | None = None,
                 time_quality: TimeQualitySource | None = None) -> None:
        self.clock = clock
        self.gps = gps
        self.time_quality = time_quality or FixedTimeQuality()

    def moment(self) -> Moment:
        wall, mono = self.clock.wall_ns(), self.clock.mono_ns()
        reading = self.gps.reading() if self.gps is not None else NO_GPS
        quality = self.time_quality.read()
        quality = replace(quality, gps_offset_s=gps_offset_s(reading, wall))
        return Moment(wall_ns=wall, mono_ns=mono, gps=reading, time=quality)

    def close(self) -> None:
        if self.gps is not None:
            self.gps.close()

"""A simulated receiver for the demo: a slow, seeded random walk around a site centre.

Deterministic: the position depends only on the seed and how many whole seconds of the injected
monotonic clock have passed since start, so a test with a ManualClock gets the same track every
run. Marked ``talker="sim"`` so a simulated position can never pass for a real one.
"""

from __future__ import annotations

import math
import random
import threading

from agent.core.clock import Clock, iso_utc
from agent.core.model import GpsFix, GpsReading

_M_PER_DEG_LAT = 111_320.0


class SimulatedGps:
    """Walks ``step_m`` per second in a wandering direction, reflected back inside ``radius_m``."""

    def __init__(self, clock: Clock, *, lat: float, lon: float, radius_m: float = 25.0,
                 step_m: float = 0.5, seed: int = 1, alt_m: float = 50.0) -> None:
        if not (-90.0 < lat < 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(f"site centre out of range: {lat}, {lon}")
        if radius_m <= 0 or step_m < 0:
            raise ValueError("radius_m must be > 0 and step_m >= 0")
        self._clock = clock
        self.lat0, self.lon0, self.radius_m, self.step_m, self.alt_m = lat, lon, radius_m, step_m, alt_m
        self._rng = random.Random(seed)
        self._start_mono = clock.mono_ns()
        self._steps = 0
        self._x = self._y = 0.0  # metres east / north of the centre
        self._heading = self._rng.uniform(0, 2 * math.pi)
        self._closed = False
        self._lock = threading.Lock()  # moment() is called from several threads

    def _advance_to(self, steps: int) -> None:
        while self._steps < steps:  # one step per simulated second; deterministic for a seed
            self._heading += self._rng.gauss(0.0, 0.4)
            x = self._x + self.step_m * math.cos(self._heading)
            y = self._y + self.step_m * math.sin(self._heading)
            if math.hypot(x, y) > self.radius_m:
                self._heading += math.pi  # turn back towards the site
                x, y = self._x, self._y
            self._x, self._y = x, y
            self._steps += 1

    def reading(self) -> GpsReading:
        with self._lock:
            if self._closed:
                return GpsReading(fix=None, status="no gps")
            elapsed_ns = max(0, self._clock.mono_ns() - self._start_mono)
            self._advance_to(elapsed_ns // 1_000_000_000)
            x, y, steps = self._x, self._y, self._steps
        lat = self.lat0 + y / _M_PER_DEG_LAT
        lon = self.lon0 + x / (_M_PER_DEG_LAT * math.cos(math.radians(self.lat0)))
        wall = self._clock.wall_ns()
        age_ns = elapsed_ns % 1_000_000_000  # a fix every whole second, like a 1 Hz receiver
        jitter = (steps * 7919) % 5  # small deterministic variation in quality
        fix = GpsFix(
            lat=lat, lon=lon, mode=3, fix_time=iso_utc(wall - age_ns), alt_m=self.alt_m + jitter * 0.3,
            hdop=round(0.8 + 0.1 * jitter, 2), satellites=8 + jitter, talker="sim",
        )
        return GpsReading(fix=fix, status="ok", age_s=age_ns / 1e9)

    def close(self) -> None:
        with self._lock:
            self._closed = True

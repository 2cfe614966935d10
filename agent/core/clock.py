"""Injectable clocks: the agent never calls time.time() directly, so tests can control time."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    """Wall and monotonic time in integer nanoseconds."""

    def wall_ns(self) -> int: ...

    def mono_ns(self) -> int: ...


class SystemClock:
    """The machine's real clocks."""

    def wall_ns(self) -> int:
        return time.time_ns()

    def mono_ns(self) -> int:
        return time.monotonic_ns()


@dataclass
class ManualClock:
    """A clock that moves only when told to (tests, simulations)."""

    wall: int = 1_790_000_000_000_000_000
    mono: int = 1_000_000_000

    def wall_ns(self) -> int:
        return self.wall

    def mono_ns(self) -> int:
        return self.mono

    def advance(self, seconds: float) -> None:
        step = int(seconds * 1e9)
        self.wall += step
        self.mono += step


def boot_id() -> str:
    """Linux boot id: monotonic times are only comparable within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def iso_utc(wall_ns: int) -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-22T08:53:56.123456Z."""
    secs, ns = divmod(wall_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // 1000:06d}Z"


def parse_aware_iso(text: str) -> dt.datetime:
    """An ISO 8601 time with a UTC offset (``Z`` or ``+08:00``), in UTC; ValueError for anything else."""
    when = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if when.utcoffset() is None:
        raise ValueError("has no UTC offset (write e.g. 2026-12-10T09:00:00+08:00 or ...Z)")
    return when.astimezone(dt.UTC)


def iso_seconds(when: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``."""
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

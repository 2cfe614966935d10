"""Where the wall clock's time comes from, how good it is, and alarms when it misbehaves.

Sources, best first: chrony (``chronyc -c tracking``: synced or not, which reference, error
bound), then the kernel's NTP state (``adjtimex`` read-only via ctypes), else "unsynced".
The parsing is split from the probing so tests feed recorded outputs instead of the host's state.
``ClockWatch`` compares wall and monotonic progress (a step of the wall clock is a jump) and GPS
time with system time, and yields alarm values for the caller to seal.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.core.clock import Clock
from agent.core.model import GpsReading, Moment, TimeQuality

UNSYNCED = TimeQuality(source="unsynced", synced=False)
#: chrony refclock names (refid) that mean "disciplined by the GNSS receiver".
GPS_REFCLOCK_PREFIXES = ("GPS", "PPS", "NMEA", "GNS", "SHM", "SOCK")
STA_UNSYNC = 0x0040
TIME_ERROR = 5


class TimeConfig(BaseModel):
    """The ``[time]`` table: how time quality is probed and when clock alarms fire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chrony: bool = Field(
        default=True, description="ask chronyd (chronyc -c tracking) when chronyc is installed")
    kernel: bool = Field(
        default=True, description="fall back to the kernel's NTP state via adjtimex")
    refresh_s: float = Field(
        default=10.0, gt=0, le=3600, description="re-probe the time source at most this often")
    jump_threshold_s: float = Field(
        default=1.0, gt=0, description="alarm when the wall clock gains or loses this much against the monotonic clock")
    gps_threshold_s: float = Field(
        default=1.0, gt=0, description="alarm when GPS time and system time disagree by more than this")


@dataclass(frozen=True)
class ChronyTracking:
    """The fields of ``chronyc -c tracking`` the agent uses."""

    ref_id: str
    ref_name: str
    stratum: int
    system_offset_s: float
    root_delay_s: float
    root_dispersion_s: float
    leap_status: str

    @property
    def synced(self) -> bool:
        return self.leap_status != "Not synchronised" and self.ref_id not in ("00000000", "7F7F0101")

    @property
    def gps_refclock(self) -> bool:
        return self.synced and self.stratum <= 1 and self.ref_name.upper().startswith(GPS_REFCLOCK_PREFIXES)

    @property
    def est_error_s(self) -> float:
        """chrony's bound on the clock error: |current offset| + root dispersion + root delay / 2."""
        return abs(self.system_offset_s) + self.root_dispersion_s + self.root_delay_s / 2


def parse_chronyc_tracking(output: str) -> ChronyTracking:
    """Parse the CSV line of ``chronyc -c tracking``; ValueError names what is wrong."""
    line = output.strip().splitlines()[0] if output.strip() else ""
    fields = line.split(",")
    if len(fields) < 14:
        raise ValueError(f"chronyc tracking: expected 14 CSV fields, got {len(fields)}: {line[:80]!r}")
    try:
        return ChronyTracking(
            ref_id=fields[0].upper(), ref_name=fields[1], stratum=int(fields[2]),
            system_offset_s=float(fields[4]), root_delay_s=float(fields[10]),
            root_dispersion_s=float(fields[11]), leap_status=fields[13].strip(),
        )
    except ValueError as exc:
        raise ValueError(f"chronyc tracking: bad number in {line[:80]!r}: {exc}") from exc


def from_chrony(track: ChronyTracking) -> TimeQuality:
    if not track.synced:
        return UNSYNCED
    return TimeQuality(source="gps" if track.gps_refclock else "ntp", synced=True,
                       est_error_s=round(track.est_error_s, 9))


# -- kernel ---------------------------------------------------------------------------------


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex from <sys/timex.h> (Linux); ctypes applies the C alignment rules."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int), ("_pad", ctypes.c_int * 11),
    ]


@dataclass(frozen=True)
class KernelTime:
    """adjtimex() result: clock state, status bits, error estimates in microseconds."""

    state: int
    status: int
    esterror_us: int
    maxerror_us: int

    @property
    def synced(self) -> bool:
        return self.state != TIME_ERROR and not self.status & STA_UNSYNC


def read_adjtimex() -> KernelTime | None:
    """Read-only adjtimex (modes = 0 needs no privilege); None when unavailable."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = int(libc.adjtimex(ctypes.byref(tx)))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return KernelTime(state=state, status=tx.status, esterror_us=tx.esterror, maxerror_us=tx.maxerror)


def from_kernel(kt: KernelTime) -> TimeQuality:
    if not kt.synced:
        return UNSYNCED
    return TimeQuality(source="ntp", synced=True, est_error_s=kt.esterror_us / 1e6)


def run_chronyc(timeout_s: float = 1.0) -> str | None:
    """``chronyc -c tracking`` output, or None when chrony is absent or does not answer."""
    exe = shutil.which("chronyc")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-c", "-n", "tracking"], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 and done.stdout.strip() else None


class TimeQualityProbe:
    """Reads the time source, cached for ``refresh_s`` on the monotonic clock (chronyc is a subprocess)."""

    def __init__(self, clock: Clock, config: TimeConfig | None = None, *,
                 chronyc: Callable[[], str | None] = run_chronyc,
                 adjtimex: Callable[[], KernelTime | None] = read_adjtimex) -> None:
        self._clock, self.config = clock, config or TimeConfig()
        self._chronyc, self._adjtimex = chronyc, adjtimex
        self._lock = threading.Lock()
        self._cached: TimeQuality | None = None
        self._at: int | None = None
        self.last_error: str | None = None

    def read(self) -> TimeQuality:
        with self._lock:
            now = self._clock.mono_ns()
            if self._cached is None or self._at is None or now - self._at >= self.config.refresh_s * 1e9:
                self._cached, self._at = self._probe(), now
            return self._cached

    def _probe(self) -> TimeQuality:
        if self.config.chrony:
            out = self._chronyc()
            if out is not None:
                try:
                    return from_chrony(parse_chronyc_tracking(out))
                except ValueError as exc:
                    self.last_error = str(exc)
        if self.config.kernel:
            kt = self._adjtimex()
            if kt is not None:
                return from_kernel(kt)
        return UNSYNCED


# -- GPS vs system, and clock alarms ----------------------------------------------------------


def parse_utc_ns(stamp: str) -> int | None:
    """RFC 3339 UTC (``...Z`` or ``+00:00``) to integer ns since the epoch; None when unparseable."""
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if when.tzinfo is None:
        return None
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def gps_offset_s(reading: GpsReading, wall_ns: int) -> float | None:
    """GPS time minus system time at the moment the fix arrived (includes the receiver's latency)."""
    if reading.fix is None:
        return None
    fix_ns = parse_utc_ns(reading.fix.fix_time)
    if fix_ns is None:
        return None
    arrived_ns = wall_ns - int((reading.age_s or 0.0) * 1e9)
    return (fix_ns - arrived_ns) / 1e9


@dataclass(frozen=True)
class ClockAlarm:
    """Something wrong with time, to be sealed as an event."""

    kind: Literal["clock_jump", "gps_disagree"]
    value_s: float  # the jump (wall minus monotonic progress) or the GPS-minus-system offset
    threshold_s: float
    wall_ns: int
    mono_ns: int

    def as_record(self) -> dict[str, Any]:
        return {"alarm": self.kind, "value_s": round(self.value_s, 6), "threshold_s": self.threshold_s}


class ClockWatch:
    """Call ``check()`` regularly; it returns the alarms raised since the previous call.

    A clock jump is reported once per jump. GPS disagreement is reported when it starts and again
    only after GPS and system time have agreed in between, so a persistent offset is one alarm.
    """

    def __init__(self, clock: Clock, *, jump_threshold_s: float = 1.0, gps_threshold_s: float = 1.0) -> None:
        self._clock = clock
        self.jump_threshold_s, self.gps_threshold_s = jump_threshold_s, gps_threshold_s
        self._last: tuple[int, int] | None = None
        self._disagreeing = False
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, clock: Clock, config: TimeConfig) -> ClockWatch:
        return cls(clock, jump_threshold_s=config.jump_threshold_s, gps_threshold_s=config.gps_threshold_s)

    def observe(self, moment: Moment) -> list[ClockAlarm]:
        """Check with a Moment's own (wall, mono) pair and GPS offset."""
        return self.check(moment.time.gps_offset_s, wall_ns=moment.wall_ns, mono_ns=moment.mono_ns)

    def check(self, gps_offset: float | None = None, *, wall_ns: int | None = None,
              mono_ns: int | None = None) -> list[ClockAlarm]:
        """Alarms since the last call; pass a (wall, mono) pair read together, or the clock is read."""
        with self._lock:
            if wall_ns is None or mono_ns is None:
                wall_ns, mono_ns = self._clock.wall_ns(), self._clock.mono_ns()
            wall, mono = wall_ns, mono_ns
            alarms: list[ClockAlarm] = []
            if self._last is not None:
                drift = ((wall - self._last[0]) - (mono - self._last[1])) / 1e9
                if abs(drift) > self.jump_threshold_s:
                    alarms.append(ClockAlarm("clock_jump", drift, self.jump_threshold_s, wall, mono))
            self._last = (wall, mono)
            if gps_offset is not None:
                bad = abs(gps_offset) > self.gps_threshold_s
                if bad and not self._disagreeing:
                    alarms.append(ClockAlarm("gps_disagree", gps_offset, self.gps_threshold_s, wall, mono))
                self._disagreeing = bad
            return alarms

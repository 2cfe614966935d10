"""NMEA line sources: a serial receiver (pyserial) and a log file replayed at real time or N× speed.

Each runs one named reader thread that feeds a FixTracker; ``reading()`` never blocks on I/O.
I/O failures are not raised into the capture path: the reading turns into "no gps" and the
thread retries, because a loose GPS cable must not stop evidence capture.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.core.clock import Clock
from agent.core.errors import GpsError
from agent.core.model import GpsReading
from agent.core.threads import Worker
from agent.gps.nmea import MAX_LINE, NmeaStats
from agent.gps.provider import FixTracker

log = logging.getLogger(__name__)
_TIME_FIELD = re.compile(r"^\$[A-Z]{2}(?:RMC|GGA|GNS|ZDA),(\d{6}(?:\.\d+)?),")


class _ThreadedSource:
    """A FixTracker plus one named reader thread with a stop event; close() is idempotent."""

    name = "gps-source"

    def __init__(self, clock: Clock, max_age_s: float) -> None:
        self._tracker = FixTracker(clock, max_age_s)
        self._stop = threading.Event()
        self._thread: Worker | None = None
        self._done = threading.Event()  # reader finished (EOF of a non-looping replay)
        self.last_error: str | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = Worker(self.name, self._run_guarded, stopping=self._stop)
        self._thread.start()

    def _run_guarded(self, _stopping: threading.Event) -> None:  # _stopping is self._stop, read by _run
        try:
            self._run()
        except Exception as exc:  # the thread must report, never die silently
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("%s stopped", self.name)
        finally:
            self._done.set()

    def _run(self) -> None:
        raise NotImplementedError

    def reading(self) -> GpsReading:
        return self._tracker.reading()

    @property
    def stats(self) -> NmeaStats:
        return self._tracker.stats

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until the reader has nothing more to read (replay EOF); for tests and tools."""
        return self._done.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(5.0)

    def __enter__(self) -> _ThreadedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialGps(_ThreadedSource):
    """A receiver on a serial port (/dev/serial0, /dev/ttyUSB0 ...), reopened if it goes away."""

    name = "gps-serial"

    def __init__(self, clock: Clock, device: str, baud: int = 9600, *, max_age_s: float = 2.0,
                 retry_s: float = 2.0, autostart: bool = True) -> None:
        super().__init__(clock, max_age_s)
        self.device, self.baud, self.retry_s = device, baud, retry_s
        self.port_open = threading.Event()  # set while the device is open (tools, tests, selftest)
        if autostart:
            self.start()

    def _open(self) -> Any:
        import serial  # pyserial; imported here so the package imports without it

        try:
            return serial.Serial(self.device, self.baud, timeout=0.5)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise GpsError(f"cannot open GPS serial device {self.device!r}: {exc}") from exc

    def _run(self) -> None:
        import serial

        while not self._stop.is_set():
            try:
                port = self._open()
            except GpsError as exc:
                self.last_error = str(exc)
                self._stop.wait(self.retry_s)
                continue
            self.last_error = None
            self.port_open.set()
            try:
                with port:
                    while not self._stop.is_set():
                        raw = port.read_until(b"\n", MAX_LINE + 2)
                        if raw:
                            self._tracker.feed_line(raw)
            except (serial.SerialException, OSError) as exc:
                self.last_error = f"GPS serial device {self.device!r} failed: {exc}"
                log.warning("%s", self.last_error)
                self._stop.wait(self.retry_s)
            finally:
                self.port_open.clear()


def _time_of_day(line: str) -> float | None:
    m = _TIME_FIELD.match(line)
    if m is None:
        return None
    try:
        t = dt.time.fromisoformat(f"{m.group(1)[0:2]}:{m.group(1)[2:4]}:{m.group(1)[4:6]}")
    except ValueError:
        return None
    frac = float("0" + m.group(1)[6:]) if len(m.group(1)) > 6 else 0.0
    return t.hour * 3600 + t.minute * 60 + t.second + frac


def replay_delays(lines: list[bytes], max_gap_s: float = 2.0) -> Iterator[tuple[float, bytes]]:
    """Yield (seconds to wait before the line, line) from the sentence times in a log.

    The gap between epochs is the difference of their UTC times, clamped to [0, max_gap_s] so a
    log that jumps (two recordings pasted together) replays without a long silence.
    """
    last: float | None = None
    for raw in lines:
        text = raw.decode("latin-1", "replace").strip()
        now = _time_of_day(text) if "\x00" not in text else None
        delay = 0.0
        if now is not None:
            if last is not None and now > last:
                delay = min(now - last, max_gap_s)
            last = now
        yield delay, raw


class NmeaFileReplay(_ThreadedSource):
    """Replays a recorded NMEA log as if a receiver were sending it.

    ``speed`` 1.0 = real time from the sentence timestamps, 10.0 = ten times faster, 0 = as fast as
    possible. At the end of the file it stops (the reading then ages into "no gps") or loops.
    """

    name = "gps-replay"

    def __init__(self, clock: Clock, path: str | Path, *, speed: float = 1.0, loop: bool = False,
                 max_age_s: float = 2.0, autostart: bool = True) -> None:
        super().__init__(clock, max_age_s)
        if speed < 0:
            raise GpsError(f"NMEA replay speed must be >= 0, got {speed}")
        self.path, self.speed, self.loop = Path(path), speed, loop
        try:
            self._lines = self.path.read_bytes().splitlines()
        except OSError as exc:
            raise GpsError(f"cannot read NMEA log {str(self.path)!r}: {exc.strerror or exc}") from exc
        if autostart:
            self.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for delay, raw in replay_delays(self._lines):
                if self.speed > 0 and delay > 0 and self._stop.wait(delay / self.speed):
                    return
                if self._stop.is_set():
                    return
                self._tracker.feed_line(raw)
            if not self.loop:
                return

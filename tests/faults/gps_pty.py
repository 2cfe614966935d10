"""A GPS receiver on a pseudo-terminal: true-time NMEA, garbage, or silence, switched while the agent reads it.

The agent opens the pty's slave end as its serial device (``[gps] source = "serial"``), exactly as it opens
/dev/serial0 on the Pi.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pty
import random
import threading
import time
import tty
from typing import Literal

Mode = Literal["good", "garbage", "silence", "nofix"]


def nmea(body: str) -> bytes:
    cs = 0
    for ch in body.encode():
        cs ^= ch
    return f"${body}*{cs:02X}\r\n".encode()


def epoch(now: dt.datetime, *, lat: str = "3113.8240", lon: str = "12128.4220", fix: bool = True) -> bytes:
    """RMC + GGA + GSA for one epoch at ``now`` (UTC)."""
    hms = now.strftime("%H%M%S") + f".{now.microsecond // 10000:02d}"
    dmy = now.strftime("%d%m%y")
    if not fix:
        return nmea(f"GPRMC,{hms},V,,,,,,,{dmy},,,N") + nmea(f"GPGGA,{hms},,,,,0,00,99.9,,M,,M,,")
    return (nmea(f"GPRMC,{hms},A,{lat},N,{lon},E,0.1,0.0,{dmy},,,A")
            + nmea(f"GPGGA,{hms},{lat},N,{lon},E,1,08,0.9,12.0,M,8.0,M,,")
            + nmea("GPGSA,A,3,01,02,03,04,05,06,07,08,,,,,1.5,0.9,1.2"))


class PtyGps:
    """Writes to a pty master every ``period_s`` according to ``mode``; ``offset_s`` shifts GPS time."""

    def __init__(self, period_s: float = 0.2, seed: int = 1) -> None:
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        tty.setraw(slave)
        self.device = os.ttyname(slave)
        self._slave = slave  # kept open so the master never sees EIO while the agent reopens
        self.period_s = period_s
        self.mode: Mode = "good"
        self.offset_s = 0.0
        self.written = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pty-gps", daemon=True)
        self._thread.start()

    def _chunk(self) -> bytes:
        if self.mode == "silence":
            return b""
        if self.mode == "garbage":
            junk = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(1, 200)))
            fake = nmea("GPRMC,999999,A,xx,N,yy,E,,,,,,A")[:-5] + b"00\r\n"  # bad checksum
            return junk + b"\r\n" + fake + b"$GPGGA,,,,\r\n"
        now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.offset_s)
        return epoch(now, fix=self.mode == "good")

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            data = self._chunk()
            if data:
                try:
                    os.write(self.master, data)
                    self.written += len(data)
                except OSError:
                    time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

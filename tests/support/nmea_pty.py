"""A simulated GPS receiver on a pseudo-terminal: the agent opens it as a serial port, the test moves it.

Writes GGA + RMC once per ``period`` for ``position`` (or invalid sentences when it is None), so a
test can take a running device inside and then outside a site without timing games.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pty
import threading
import tty

from agent.gps.nmea import nmea_checksum


def _sentence(body: str) -> bytes:
    return f"${body}*{nmea_checksum(body):02X}\r\n".encode()


def _dm(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    v = abs(value)
    deg = int(v)
    minutes = (v - deg) * 60
    return (f"{deg:02d}{minutes:07.4f}" if lat else f"{deg:03d}{minutes:07.4f}"), hemi


def sentences(lat: float | None, lon: float | None, when: dt.datetime) -> bytes:
    hms = when.strftime("%H%M%S") + f".{when.microsecond // 10000:02d}"
    if lat is None or lon is None:
        return _sentence(f"GPRMC,{hms},V,,,,,,,{when.strftime('%d%m%y')},,,N")
    la, lah = _dm(lat, True)
    lo, loh = _dm(lon, False)
    return (_sentence("GPGSA,A,3,04,05,09,12,24,25,29,31,02,,,,1.6,0.9,1.3")
            + _sentence(f"GPGGA,{hms},{la},{lah},{lo},{loh},1,09,0.9,48.0,M,0.0,M,,")
            + _sentence(f"GPRMC,{hms},A,{la},{lah},{lo},{loh},0.10,0.0,{when.strftime('%d%m%y')},,,A"))


class PtyGps:
    """``path`` is the serial device to put in ``[gps] device``; set ``position`` to move."""

    def __init__(self, lat: float, lon: float, period: float = 0.5) -> None:
        self.position: tuple[float, float] | None = (lat, lon)
        self._master, slave = pty.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass as a UART would
        os.set_blocking(self._master, False)  # a full buffer (nobody reading yet) drops sentences, never blocks
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open so writes never fail while the agent reopens the port
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pty-gps", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            pos = self.position
            data = sentences(*(pos if pos is not None else (None, None)), dt.datetime.now(dt.UTC))
            try:
                os.write(self._master, data)
            except BlockingIOError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

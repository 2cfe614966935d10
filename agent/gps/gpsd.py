"""gpsd client: the JSON protocol over TCP (default port 2947), in one named reader thread.

A small own client instead of a dependency: it only needs ?WATCH, TPV (mode, position, time)
and SKY (HDOP, satellites used). gpsd may share one receiver with chrony on a Pi, which is why
the agent talks to gpsd instead of opening the serial port itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import threading
from dataclasses import dataclass
from typing import Any

from agent.core.clock import Clock
from agent.core.model import GpsFix, GpsReading
from agent.core.threads import Worker
from agent.gps.provider import FixTracker

log = logging.getLogger(__name__)
WATCH = b'?WATCH={"enable":true,"json":true};\n'
MAX_MESSAGE = 1 << 20  # gpsd SKY reports with many satellites are a few KB; anything huge is broken


@dataclass(frozen=True)
class GpsdStats:
    """What the client received; ``bad`` counts lines that were not JSON objects."""

    messages: int = 0
    tpv: int = 0
    sky: int = 0
    bad: int = 0
    connects: int = 0


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def tpv_to_fix(tpv: dict[str, Any], hdop: float | None, satellites: int | None) -> GpsFix | None:
    """A GpsFix from a TPV report, or None when gpsd says there is no 2D/3D fix."""
    mode = tpv.get("mode")
    lat, lon, when = _finite(tpv.get("lat")), _finite(tpv.get("lon")), tpv.get("time")
    if mode not in (2, 3) or lat is None or lon is None or not isinstance(when, str) or not when:
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    alt = _finite(tpv.get("altMSL", tpv.get("alt"))) if mode == 3 else None
    return GpsFix(lat=lat, lon=lon, mode=3 if mode == 3 else 2, fix_time=when, alt_m=alt, hdop=hdop,
                  satellites=satellites, talker="gpsd")


def sky_quality(sky: dict[str, Any]) -> tuple[float | None, int | None]:
    """(HDOP, satellites used) from a SKY report; gpsd reports 0.0 DOPs when it has none."""
    hdop = _finite(sky.get("hdop"))
    used = sky.get("uSat")
    if not isinstance(used, int) and isinstance(sky.get("satellites"), list):
        used = sum(1 for s in sky["satellites"] if isinstance(s, dict) and s.get("used") is True)
    # 0 used satellites beside a fix means gpsd does not know (some NMEA receivers omit it): say None.
    return (hdop if hdop else None), (used if isinstance(used, int) and used > 0 else None)


class GpsdGps:
    """GpsProvider backed by gpsd; reconnects every ``retry_s`` while gpsd is away."""

    name = "gps-gpsd"

    def __init__(self, clock: Clock, host: str = "127.0.0.1", port: int = 2947, *, max_age_s: float = 2.0,
                 retry_s: float = 2.0, autostart: bool = True) -> None:
        self.host, self.port, self.retry_s = host, port, retry_s
        self._tracker = FixTracker(clock, max_age_s)
        self._stop = threading.Event()
        self._thread: Worker | None = None
        self._sock: socket.socket | None = None
        self._counts = dict.fromkeys(GpsdStats.__dataclass_fields__, 0)
        self._hdop: float | None = None
        self._sats: int | None = None
        self.last_error: str | None = None
        if autostart:
            self.start()

    @property
    def stats(self) -> GpsdStats:
        return GpsdStats(**self._counts)

    def start(self) -> None:
        if self._thread is None:
            self._thread = Worker(self.name, self._run, stopping=self._stop)
            self._thread.start()

    def reading(self) -> GpsReading:
        return self._tracker.reading()

    def close(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(5.0)

    # -- reader thread ----------------------------------------------------------------------

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self._session()
            except (OSError, ValueError) as exc:
                self.last_error = f"gpsd at {self.host}:{self.port}: {exc}"
                log.debug("%s", self.last_error)
            stopping.wait(self.retry_s)

    def _session(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=2.0) as sock:
            self._sock = sock
            try:
                sock.settimeout(0.5)
                sock.sendall(WATCH)
                self._counts["connects"] += 1
                self.last_error = None
                buf = b""
                while not self._stop.is_set():
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        continue
                    if not chunk:
                        raise ConnectionError("gpsd closed the connection")
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    if len(buf) > MAX_MESSAGE:
                        self._counts["bad"] += 1
                        buf = b""
                    for line in lines:
                        if line.strip():
                            self.handle_line(line)
            finally:
                self._sock = None  # the reading ages into "no gps" on its own

    def handle_line(self, line: bytes | str) -> None:
        """Apply one JSON report (public so tests can drive the decoding without a socket)."""
        try:
            msg = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self._counts["bad"] += 1
            return
        if not isinstance(msg, dict):
            self._counts["bad"] += 1
            return
        self._counts["messages"] += 1
        kind = msg.get("class")
        if kind == "SKY":
            self._counts["sky"] += 1
            hdop, sats = sky_quality(msg)
            self._hdop = hdop if hdop is not None else self._hdop
            self._sats = sats if sats is not None else self._sats
            self._tracker.heard()
        elif kind == "TPV":
            self._counts["tpv"] += 1
            fix = tpv_to_fix(msg, self._hdop, self._sats)
            if fix is None and msg.get("mode") not in (2, 3):
                self._hdop = self._sats = None  # quality of a lost fix must not decorate the next one
            self._tracker.set_fix(fix)
        elif kind == "ERROR":
            self.last_error = f"gpsd error: {msg.get('message')}"

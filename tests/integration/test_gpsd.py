"""The gpsd client against the real gpsd, fed by gpsfake replaying real receiver logs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.core.clock import SystemClock
from agent.core.model import GpsReading
from agent.gps.gpsd import GpsdGps

NMEA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nmea"
CYCLE_S = "0.05"  # gpsfake's delay between sentences: a 90-line log takes ~5 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gpsfake() -> Iterator[Callable[[str], int]]:
    """Start ``gpsfake`` (which starts its own gpsd) on a free port for one log; returns the port."""
    exe = shutil.which("gpsfake")
    if exe is None or (shutil.which("gpsd") is None and not Path("/usr/sbin/gpsd").exists()):
        pytest.skip("gpsfake/gpsd not installed (apt-get install gpsd gpsd-clients)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> int:
        log = NMEA_DIR / name
        if not log.exists():
            pytest.skip(f"real receiver logs not available: {log.resolve()}")
        port = free_port()
        env = {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin"}
        procs.append(subprocess.Popen(
            [exe, "-q", "-1", "-c", CYCLE_S, "-P", str(port), str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env))
        return port

    yield start
    for proc in procs:  # gpsfake and the gpsd it started share the new session's process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:  # seen: gpsfake ignoring SIGTERM once its gpsd has died
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def watch(gps: GpsdGps, until: Callable[[list[GpsReading]], bool], timeout: float = 15.0) -> list[GpsReading]:
    seen: list[GpsReading] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = gps.reading()
        if not seen or (r.status, r.fix) != (seen[-1].status, seen[-1].fix):
            seen.append(r)
            if until(seen):
                return seen
        time.sleep(0.02)
    raise AssertionError(f"gave up after {timeout}s; statuses: {[r.status for r in seen]}; {gps.last_error}")


def fix_then_loss(seen: list[GpsReading]) -> bool:
    got_fix = next((i for i, r in enumerate(seen) if r.fix is not None), None)
    return got_fix is not None and any(r.status == "no fix" for r in seen[got_fix:])


@pytest.mark.parametrize(("name", "lat", "lon"), [
    ("ch-4711.log", 55.717, 37.412),  # GLONASS, loses lock at the end
    ("bu353-glonass.log", 55.687, 37.621),  # GN/GL/GP, 9 good epochs then 10 void
])
def test_gpsd_fixes_arrive_and_loss_is_no_fix(gpsfake: Callable[[str], int], name: str, lat: float,
                                              lon: float) -> None:
    port = gpsfake(name)
    gps = GpsdGps(SystemClock(), "127.0.0.1", port, max_age_s=3.0, retry_s=0.1)
    try:
        seen = watch(gps, fix_then_loss)
        fixes = [r.fix for r in seen if r.fix is not None]
        assert all(r.status == "ok" for r in seen if r.fix is not None)
        first = fixes[0]
        assert abs(first.lat - lat) < 0.01 and abs(first.lon - lon) < 0.01
        assert first.mode in (2, 3) and first.talker == "gpsd" and first.fix_time.endswith("Z")
        assert seen[-1].fix is None and seen[-1].status == "no fix"
        assert gps.stats.tpv > 0 and gps.stats.bad == 0 and gps.stats.connects == 1
    finally:
        gps.close()


def test_gpsd_going_away_reads_no_gps(gpsfake: Callable[[str], int]) -> None:
    port = gpsfake("bu353s4.log")  # steady 3D fix until gpsd is stopped
    gps = GpsdGps(SystemClock(), "127.0.0.1", port, max_age_s=1.0, retry_s=0.1)
    try:
        watch(gps, lambda seen: seen[-1].fix is not None)
        gps.close()  # no more reports: the fix must age out instead of lingering
        time.sleep(1.2)
        assert gps.reading().fix is None and gps.reading().status == "no gps"
    finally:
        gps.close()

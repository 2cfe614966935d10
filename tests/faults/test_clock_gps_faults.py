"""Clock and GPS faults under the running agent: the system clock stepped forwards and backwards, GPS time
disagreeing, a GPS serial line that spews garbage, goes silent or loses its fix.

Every fault is detected and sealed (``clock_alarm`` events, each record's time quality and GPS status), no
record carries a stale or invented position, and the chain verifies afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.clock import SystemClock
from agent.device.config import load_config
from agent.device.runtime import Agent
from tests.faults.gps_pty import PtyGps
from tests.faults.rig import Rig, wait_until

MAX_AGE_S = 1.0


class SteppableClock(SystemClock):
    """The system clock as the agent sees it; ``step()`` sets it like `date -s` would (monotonic unaffected)."""

    def __init__(self) -> None:
        self.offset_ns = 0
        self._lock = threading.Lock()

    def wall_ns(self) -> int:
        with self._lock:
            return time.time_ns() + self.offset_ns

    def step(self, seconds: float) -> None:
        with self._lock:
            self.offset_ns += int(seconds * 1e9)


@pytest.fixture
def gps() -> Iterator[PtyGps]:
    g = PtyGps(period_s=0.2)
    yield g
    g.close()


def alarms(rig: Rig) -> list[dict[str, Any]]:
    return [r["extra"] for r in rig.sealed() if r["kind"] == "event" and r["extra"].get("type") == "clock_alarm"]


def test_clock_steps_and_gps_faults_are_detected_and_sealed(tmp_path: Path, gps: PtyGps) -> None:
    rig = Rig(tmp_path / "device", still_interval_s=0.2,
              extra={"gps": {"source": "serial", "device": gps.device, "baud": 9600, "max_age_s": MAX_AGE_S,
                             "retry_s": 0.5},
                     "time": {"chrony": False, "jump_threshold_s": 1.0, "gps_threshold_s": 1.0}})
    clock = SteppableClock()
    agent = Agent(load_config(rig.config), clock=clock)
    phases: list[tuple[str, int]] = []  # (gps mode, monotonic ns when it began)

    def phase(mode: str) -> None:
        gps.mode = mode  # type: ignore[assignment]
        phases.append((mode, time.monotonic_ns()))

    try:
        agent.start()
        phase("good")
        assert wait_until(lambda: any(r["gps"]["fix"] == "3d" for r in rig.sealed()), 20), "no GPS fix sealed"
        time.sleep(2.5)  # the clock watch (every 2 s) has a reading from before the step
        # 1. The system clock jumps 30 s forwards: a clock_jump alarm, then GPS (true time) disagrees by -30 s.
        clock.step(30)
        assert wait_until(lambda: {a["alarm"] for a in alarms(rig)} >= {"clock_jump", "gps_disagree"}, 15), alarms(rig)
        # 2. ... and 60 s backwards (now 30 s slow): a second jump alarm.
        clock.step(-60)
        assert wait_until(lambda: sum(a["alarm"] == "clock_jump" for a in alarms(rig)) >= 2, 15), alarms(rig)
        clock.step(30)  # back to true time; GPS agrees again
        time.sleep(2.5)
        # 3. GPS faults: garbage, silence, a receiver without fix, then good again.
        for mode in ("garbage", "silence", "nofix", "good"):
            phase(mode)
            time.sleep(MAX_AGE_S + 2.0)
    finally:
        agent.close()
    records = rig.sealed()
    found = alarms(rig)
    jumps = sorted(a["value_s"] for a in found if a["alarm"] == "clock_jump")
    assert jumps[0] == pytest.approx(-60, abs=2) and jumps[-1] == pytest.approx(30, abs=2), jumps
    disagree = [a["value_s"] for a in found if a["alarm"] == "gps_disagree"]
    assert any(abs(v + 30) < 2 for v in disagree), disagree
    # Records sealed while the clock was 30 s fast say so in their own time quality.
    assert any(r["time"].get("gps_offset_s") is not None and abs(r["time"]["gps_offset_s"] + 30) < 2
               for r in records), "no record carries the GPS-vs-system offset"
    # Never a stale position: once a fault phase is older than max_age, every record says no fix, with why.
    expected = {"garbage": {"no gps"}, "silence": {"no gps"}, "nofix": {"no fix", "stale"}}
    seen: dict[str, set[str]] = {}
    for (mode, start_ns), nxt in zip(phases, [*phases[1:], ("end", 1 << 62)], strict=True):
        if mode not in expected:
            continue
        for r in records:
            mono_ns = r["captured"]["mono_us"] * 1000
            if start_ns + int((MAX_AGE_S + 0.5) * 1e9) <= mono_ns < nxt[1]:
                assert r["gps"]["fix"] == "none", (mode, r["seq"], r["gps"])
                seen.setdefault(mode, set()).add(r["gps"]["status"])
    for mode, statuses in expected.items():
        assert seen.get(mode) and seen[mode] <= statuses, (mode, seen.get(mode))
    # GPS came back: the last records carry a fresh fix again.
    assert records[-5:] and any(r["gps"]["fix"] == "3d" for r in records[-8:])
    rep = rig.verify_json(rig.vault, anchors=False)
    assert rep["ok"], rep["problems"][:5]
    print("clock/gps faults:", {"alarms": [(a["alarm"], a["value_s"]) for a in found], "gps_status": seen})

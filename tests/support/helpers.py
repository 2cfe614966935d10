"""Helpers every test layer shares: repository paths, shared test data, capture moments, waiting."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.core.model import GpsFix, GpsReading, Moment, TimeQuality

REPO = Path(__file__).resolve().parents[2]
# beside the checkout; EVIDENCE_AGENT_SHARED points elsewhere (a git worktree, a CI cache)
SHARED = Path(os.environ.get("EVIDENCE_AGENT_SHARED") or REPO.parent / "shared")


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test with the reason (a user's fresh clone has none)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not available: {path} (only present beside the project checkout)")
    return path


def moment(clock: ManualClock, *, fix: bool = True) -> Moment:
    """A capture moment on the manual clock, with a fixed GPS fix or an explicit no-fix."""
    reading = GpsReading(fix=GpsFix(lat=31.2304, lon=121.4737, mode=3, fix_time="2026-09-21T12:00:00.000000Z",
                                    alt_m=12.0, hdop=0.9, satellites=9, talker="GN"), age_s=0.2) if fix \
        else GpsReading(fix=None, status="no fix")
    return Moment(wall_ns=clock.wall_ns(), mono_ns=clock.mono_ns(), gps=reading,
                  time=TimeQuality(source="ntp", synced=True, est_error_s=0.01, gps_offset_s=0.002))


def wait_until(pred: Callable[[], object], timeout: float = 20.0, step: float = 0.05) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds pass; returns its last truth value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def wait_for(cond: Callable[[], object], timeout: float = 20.0, step: float = 0.05) -> None:
    """Like :func:`wait_until`, but fails the test when the condition is not met in time."""
    if not wait_until(cond, timeout, step):
        raise AssertionError("condition not met in time")

"""Shared fixtures: a fresh device identity, vault and sealer per test, on a manual clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.clock import ManualClock
from agent.model import GpsFix, GpsReading, Moment, TimeQuality
from agent.sealer import Sealer
from agent.signing.keys import DeviceIdentity, init_identity, load_identity
from agent.vault import Vault

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test with the reason (a user's fresh clone has none)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not available: {path} (only present beside the project checkout)")
    return path


@pytest.fixture
def manual_clock() -> ManualClock:
    """Starts at the real time so records fall inside the freshly issued certificate's validity."""
    return ManualClock(wall=time.time_ns())


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    init_identity(d, "test-device", "Test Enterprise")
    return d


@pytest.fixture
def identity(key_dir: Path) -> DeviceIdentity:
    return load_identity(key_dir)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    v = Vault(tmp_path / "vault")
    yield v
    v.close()


@pytest.fixture
def sealer(vault: Vault, identity: DeviceIdentity) -> Sealer:
    return Sealer(vault, identity, device_id="test-device", site_id="test-site")


def moment(clock: ManualClock, *, fix: bool = True) -> Moment:
    """A capture moment on the manual clock, with a fixed GPS fix or an explicit no-fix."""
    reading = GpsReading(fix=GpsFix(lat=31.2304, lon=121.4737, mode=3, fix_time="2026-09-21T12:00:00.000000Z",
                                    alt_m=12.0, hdop=0.9, satellites=9, talker="GN"), age_s=0.2) if fix \
        else GpsReading(fix=None, status="no fix")
    return Moment(wall_ns=clock.wall_ns(), mono_ns=clock.mono_ns(), gps=reading,
                  time=TimeQuality(source="ntp", synced=True, est_error_s=0.01, gps_offset_s=0.002))

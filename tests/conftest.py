"""Shared fixtures: a fresh device identity, vault and sealer per test, on a manual clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity, init_identity, load_identity
from tests.support.helpers import REPO, SHARED, moment, shared_path  # noqa: F401  (fixtures' modules use these)
from tests.support.postgres import Postgres, postgres_or_skip


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


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A PostgreSQL server of the test module's own, started as an unprivileged user (skips saying why where
    none can run)."""
    server = postgres_or_skip()
    yield server
    server.stop()

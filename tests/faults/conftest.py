"""Fixtures for the fault suite: real Mosquitto (TLS and plain), RFC 3161 TSA and ledger double.

Counts scale with ``FAULT_SCALE`` (CI: 1) and fuzzing with ``FUZZ_EXAMPLES``; see docs/reliability.md.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa

FAULT_SCALE = float(os.environ.get("FAULT_SCALE", "1"))


def need_mosquitto() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")


def need_openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (the local RFC 3161 TSA runs `openssl ts -reply`)")


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A customs-style broker (mutual TLS, ACLs) of this test's own: tests stop and restart it."""
    need_mosquitto()
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def tsa() -> Iterator[LocalTsa]:
    need_openssl()
    t = LocalTsa()
    yield t
    t.close()


@pytest.fixture
def ledger() -> Iterator[LocalLedger]:
    led = LocalLedger()
    yield led
    led.close()

"""Fixtures for tests against a real Mosquitto (one broker per test module)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto


def _need_mosquitto() -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """TLS broker: test CA, require_certificate, CN as username, per-device pattern ACLs.

    Identities: any CN is a device; ``officer-alice`` is an officer, ``ingest-1`` an ingest worker.
    Use ``mosquitto.mqtt_config(cn)`` for a client and ``mosquitto.pki.client(cn)`` for raw files.
    """
    _need_mosquitto()
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def plain_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """Anonymous plain-TCP broker (local use: `mqtt://`)."""
    _need_mosquitto()
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto-plain"), tls=False)
    broker.start()
    yield broker
    broker.stop()

"""Attacks on the customs side, through the broker built by `evidence-officer broker-setup` and the real CLIs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fleet import Fleet
from tests.support.netns import lan_neighbour  # noqa: F401  (the network-namespace test host fixture)

DEVICES = ("cam-good", "cam-evil", "cam-victim")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    f = Fleet(tmp_path_factory.mktemp("fleet"), DEVICES)
    f.start()
    yield f
    f.stop()

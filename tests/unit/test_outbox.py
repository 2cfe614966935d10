"""Outbox durability and ordering without a broker (the link is never connected)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.uplink.outbox import Outbox
from agent.wire.mqtt import MqttLink
from agent.wire.mqtt_settings import MqttConfig
from agent.wire.topics import DeviceTopics
from tests.support.helpers import moment

REPO = Path(__file__).resolve().parents[2]


def _offline_link() -> MqttLink:
    return MqttLink(MqttConfig(broker="mqtt://127.0.0.1:1", client_id="never-connects"))


def _offline_outbox(tmp_path: Path, vault: Vault) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite", _offline_link(), DeviceTopics("test-site", "test-device"),
                  vault_dir=vault.path)


@pytest.fixture
def outbox(tmp_path: Path, vault: Vault) -> Iterator[Outbox]:
    box = _offline_outbox(tmp_path, vault)
    box.start()
    yield box
    box.close()


def _rows(path: Path) -> list[tuple[int, str, int | None, str | None]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT priority, channel, seq, kind FROM entries ORDER BY priority, id").fetchall()
    finally:
        db.close()


def _wait_rows(path: Path, n: int, timeout: float = 10.0) -> list[tuple[int, str, int | None, str | None]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _rows(path)
        if len(rows) >= n:
            return rows
        time.sleep(0.02)
    raise AssertionError(f"expected {n} outbox rows, have {_rows(path)}")


def _caught_up(tmp_path: Path, vault: Vault, n: int) -> list[tuple[int, str, int | None, str | None]]:
    """Start an offline outbox over ``vault``, wait until its catch-up queued ``n`` rows, close it."""
    box = _offline_outbox(tmp_path, vault)
    box.start()
    try:
        return _wait_rows(box.path, n)
    finally:
        box.close()


def test_records_and_alerts_go_before_media_oldest_first(outbox: Outbox, sealer: Sealer,
                                                         manual_clock: ManualClock) -> None:
    sealer.add_listener(outbox.on_sealed)
    sealer.start(moment(manual_clock))
    sealer.seal("still", moment(manual_clock), media=b"a" * 5000, media_type="image/jpeg", ext="jpg")
    sealer.seal("tamper", moment(manual_clock), extra={"why": "case opened"})
    sealer.seal("still", moment(manual_clock), media=b"b" * 10, media_type="image/jpeg", ext="jpg")
    rows = _wait_rows(outbox.path, 7)
    assert [(r[1], r[2]) for r in rows] == [
        ("record", 0), ("record", 1), ("record", 2), ("alert", 2), ("record", 3), ("media", 1), ("media", 3)]
    stats = outbox.stats()
    assert stats.pending == 7 and stats.rejected == 0 and stats.last_sealed is not None
    assert stats.last_sealed["seq"] == 3
    assert not outbox.wait_drained(0.2)  # nothing leaves without a PUBACK


def test_items_sealed_while_the_outbox_was_down_are_caught_up(tmp_path: Path, vault: Vault, sealer: Sealer,
                                                             manual_clock: ManualClock) -> None:
    sealer.start(moment(manual_clock))  # no listener: as if the process died before enqueueing
    sealer.seal("still", moment(manual_clock), media=b"x" * 100, media_type="image/jpeg", ext="jpg")
    for _ in range(2):  # a second start must not queue them twice
        rows = _caught_up(tmp_path, vault, 3)
    assert [(r[1], r[2]) for r in rows] == [("record", 0), ("record", 1), ("media", 1)]


CHILD = r"""
import os, signal, sys, time
from pathlib import Path
from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.signing.keys import init_identity, load_identity
from agent.wire.mqtt import MqttLink
from agent.uplink.outbox import Outbox
from agent.wire.mqtt_settings import MqttConfig
from agent.wire.topics import DeviceTopics
from agent.evidence.vault import Vault
from tests.support.helpers import moment
root = Path(sys.argv[1])
init_identity(root / "keys", "test-device", "Test")
vault = Vault(root / "vault")
box = Outbox(root / "outbox.sqlite", MqttLink(MqttConfig(broker="mqtt://127.0.0.1:1", client_id="x")),
             DeviceTopics("test-site", "test-device"), vault_dir=vault.path)
box.start()
sealer = Sealer(vault, load_identity(root / "keys"), device_id="test-device", site_id="test-site",
                listeners=[box.on_sealed])
clock = ManualClock(wall=time.time_ns())
sealer.start(moment(clock))
for i in range(int(sys.argv[2])):
    sealer.seal("still", moment(clock), media=os.urandom(2000), media_type="image/jpeg", ext="jpg")
os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush: whatever was only in memory is gone
"""


def test_kill9_right_after_sealing_loses_nothing(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "30"], cwd=REPO, capture_output=True,
                         timeout=60)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()[-2000:]
    vault = Vault(tmp_path / "vault")
    try:
        rows = _caught_up(tmp_path, vault, 61)
    finally:
        vault.close()
    assert sorted(r[2] for r in rows if r[1] == "record") == list(range(31))
    assert sorted(r[2] for r in rows if r[1] == "media") == list(range(1, 31))
    assert os.path.getsize(tmp_path / "outbox.sqlite") > 0

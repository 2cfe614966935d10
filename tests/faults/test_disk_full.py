"""Disk full: the vault on a small tmpfs the test mounts (root only), and the quota with a real broker and anchors.

Capture degrades with a sealed ``vault_full`` event (which the uplink sends as an alert), nothing unsent or
unanchored is deleted, and capture resumes with a sealed ``vault_full``/``end`` event once there is room.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.device.config import load_config
from agent.device.runtime import Agent
from tests.faults.conftest import need_mosquitto
from tests.faults.rig import DEVICE, Rig, wait_until
from tests.support.broker import Mosquitto
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa

STILLS = {"width": 320, "height": 240, "jpeg_quality": 95}  # ~20 KB each


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs; skipped (the quota test below still runs) where mounting is not allowed."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the quota simulation covers the logic")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); the quota simulation covers the logic")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def events(rig: Rig, type_: str) -> list[dict[str, Any]]:
    return [r for r in rig.sealed() if r["kind"] == "event" and r["extra"].get("type") == type_]


def test_filesystem_full_degrades_then_recovers(small_fs: Path) -> None:
    rig = Rig(small_fs / "device", still_interval_s=0.05, extra={"capture": STILLS})
    ballast = small_fs / "ballast"
    ballast.write_bytes(b"\0" * (1024 * 1024))  # the rest of the disk is taken by something else
    agent = Agent(load_config(rig.config))
    try:
        agent.start()
        assert wait_until(lambda: bool(events(rig, "vault_full")), 60), "no vault_full event was sealed"
        full_at = len(rig.sealed())
        time.sleep(1.0)  # stills keep being attempted, none is sealed, nothing crashes
        assert [r["kind"] for r in rig.sealed()[full_at:]] == []
        assert agent.health()["vault"]["full"] is True
        ballast.unlink()  # space returns
        assert wait_until(lambda: any(e["extra"].get("phase") == "end" for e in events(rig, "vault_full")), 30)
        assert wait_until(lambda: rig.sealed()[-1]["kind"] == "still", 10)
    finally:
        agent.close()
    records = rig.sealed()
    print("disk full (tmpfs):", dict(Counter(r["kind"] for r in records)), agent.disk_reserve_bytes)
    onset = events(rig, "vault_full")[0]
    assert onset["extra"]["phase"] == "onset" and "reserve" in onset["extra"]["details"]
    # Nothing was deleted: every still's media is there and the vault verifies.
    for r in records:
        if r["media"]:
            assert (rig.vault / "items" / "000000" / r["media"]["name"]).exists()
    assert not events(rig, "media_evicted")
    rep = rig.verify_json(rig.vault, anchors=False)
    assert rep["ok"], rep["problems"][:5]


def test_quota_evicts_only_delivered_and_anchored(tmp_path: Path, tls_broker: Mosquitto, tsa: LocalTsa,
                                                  ledger: LocalLedger) -> None:
    """1 MiB quota, broker down first (nothing may go: capture stops, alert), then up (delivered + anchored media
    is evicted, sealed first, and capture resumes)."""
    need_mosquitto()
    rig = Rig(tmp_path / "device", broker=tls_broker, tsa=tsa, ledger=ledger, still_interval_s=0.05,
              extra={"capture": STILLS, "vault": {"quota_mb": 1}})
    rig.start_ingest()
    tls_broker.stop()
    agent = Agent(load_config(rig.config))
    try:
        agent.start()
        assert wait_until(lambda: bool(events(rig, "vault_full")), 60), "no vault_full event while offline"
        assert not events(rig, "media_evicted"), "media was evicted while nothing was delivered"
        tls_broker.start()
        assert wait_until(lambda: bool(events(rig, "media_evicted")), 60), "nothing was evicted after delivery"
        assert wait_until(lambda: any(e["extra"].get("phase") == "end" for e in events(rig, "vault_full")), 30)
        time.sleep(1.0)
        agent.stop_capture()
        assert agent.drain(60)
    finally:
        agent.close()
    ingest = rig.stop_ingest()
    records = rig.sealed()
    assert ingest["missing"] == [] and ingest["incomplete"] == [], ingest
    # Every evicted media file had reached the officer intact and was covered by an anchored checkpoint
    # before the eviction was sealed.
    anchored = {r["seq"]: r["extra"] for r in records if r["kind"] == "receipt"}
    for ev in events(rig, "media_evicted"):
        covered = max((x["checkpoint_size"] for s, x in anchored.items() if s < ev["seq"]), default=0)
        for item in ev["extra"]["items"]:
            assert (rig.received / DEVICE / "items" / "000000" / item["name"]).exists(), item
            assert item["seq"] < covered, (item, covered)
    rep = rig.verify_json(rig.vault)
    assert rep["ok"], rep["problems"][:5]
    officer = rig.verify_json(rig.received / DEVICE)
    assert officer["ok"] and officer["items"] == rep["items"]


def fill(path: Path) -> Path:
    """Take every free byte of the filesystem holding ``path`` (ENOSPC for the next write)."""
    ballast = path / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return ballast


def test_enospc_mid_seal_never_forks_the_chain(small_fs: Path) -> None:
    """The disk fills up under the sealer (another process took the space). For each amount of space left, a
    seal fails cleanly or succeeds; once space returns the chain goes on without reusing a sequence number
    and without unsealed media in the items folder."""
    from agent.core.clock import SystemClock
    from agent.device.sealer import Sealer
    from agent.device.sensors import Sensors
    from agent.evidence.vault import Vault
    from agent.signing.keys import init_identity, load_identity
    from agent.signing.verify import check

    keys = small_fs.parent / "keys"
    init_identity(keys, DEVICE, "Fault Test Ltd")
    identity = load_identity(keys)
    sensors = Sensors(SystemClock())
    problems: dict[int, list[Any]] = {}
    for free_kb in range(0, 28, 4):
        root = small_fs / f"vault-{free_kb}"
        vault = Vault(root)
        sealer = Sealer(vault, identity, device_id=DEVICE, site_id="s")
        sealer.start(sensors.moment())
        ballast = fill(small_fs)
        os.truncate(ballast, max(0, ballast.stat().st_size - free_kb * 1024))
        for _ in range(6):
            with contextlib.suppress(Exception):
                sealer.seal("still", sensors.moment(), media=os.urandom(3000), media_type="image/jpeg", ext="jpg")
        ballast.unlink()
        sealer.seal("event", sensors.moment(), extra={"type": "after"})
        vault.close()
        rep = check(root)
        if not rep.ok:
            problems[free_kb] = rep.problems
        shutil.rmtree(root)
    assert not problems, problems

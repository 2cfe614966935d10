"""The quota and the sealer run on what they are given: the disk probe decides "full", the clock stamps records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.core.model import SealedItem
from agent.device.config import parse_config
from agent.device.quota import QuotaSealer
from agent.device.runtime import Agent
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault, VaultFullError
from agent.signing.keys import init_identity
from tests.support.helpers import moment


@dataclass
class Disk:
    """A filesystem the test fills and empties."""

    total: int = 1 << 30
    free: int = 1 << 30

    def __call__(self, path: Path) -> Disk:
        return self


def test_a_full_disk_from_the_probe_stops_media_and_its_return_resumes_it(
        sealer: Sealer, vault: Vault, manual_clock: ManualClock) -> None:
    disk = Disk()
    sealed: list[SealedItem] = []
    sealer.add_listener(sealed.append)
    quota = QuotaSealer(sealer, vault, moment=lambda: moment(manual_clock), evictable=lambda r: False, disk=disk)
    assert quota.disk_reserve_bytes == 16 * 1024 * 1024  # from the probe's total, not the test machine's disk
    sealer.start(moment(manual_clock))
    quota.seal("still", moment(manual_clock), media=b"x" * 1000, media_type="image/jpeg", ext="jpg")
    disk.free = quota.disk_reserve_bytes + 500
    with pytest.raises(VaultFullError, match="bytes free"):
        quota.seal("still", moment(manual_clock), media=b"y" * 1000, media_type="image/jpeg", ext="jpg")
    events = [i.record["extra"] for i in sealed if i.kind == "event"]
    assert [(e["type"], e["phase"]) for e in events] == [("vault_full", "onset")]
    assert quota.full and not quota.try_recover()
    disk.free = 1 << 30
    assert quota.try_recover() and not quota.full
    assert [i.record["extra"]["phase"] for i in sealed if i.kind == "event"] == ["onset", "end"]


def test_the_running_agent_seals_on_its_injected_clock(tmp_path: Path) -> None:
    init_identity(tmp_path / "keys", "cam-1", "Test Enterprise")
    cfg = parse_config({"device": {"id": "cam-1"}, "identity": {"key_dir": str(tmp_path / "keys")},
                        "vault": {"path": str(tmp_path / "vault")}})
    clock = ManualClock(wall=1_800_000_000_000_000_000, mono=42_000_000_000)
    agent = Agent(cfg, clock=clock)
    try:
        item = agent.sealer.start(agent.moment())
    finally:
        agent.close()
    assert item.record["sealed"]["wall_us"] == 1_800_000_000_000_000
    assert item.record["sealed"]["mono_us"] == 42_000_000

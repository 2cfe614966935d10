from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from agent.core.clock import ManualClock
from agent.core.model import SealedItem
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity
from agent.signing.records import GENESIS_PREV, parse_sidecar
from tests.support.helpers import moment


def test_records_chain_and_carry_what_was_measured(sealer: Sealer, manual_clock: ManualClock) -> None:
    first = sealer.start(moment(manual_clock))
    manual_clock.advance(1)
    still = sealer.seal("still", moment(manual_clock), media=b"\xff\xd8jpeg", media_type="image/jpeg", ext="jpg")
    manual_clock.advance(1)
    dark = sealer.seal("still", moment(manual_clock, fix=False), media=b"x", media_type="image/jpeg", ext="jpg")
    assert [first.seq, still.seq, dark.seq] == [0, 1, 2]
    assert first.record["prev"] == GENESIS_PREV and first.kind == "restart"
    assert still.record["prev"] == first.record_hash and dark.record["prev"] == still.record_hash
    rec = still.record
    assert rec["media"]["size"] == 6 and rec["media"]["type"] == "image/jpeg"
    assert rec["gps"]["fix"] == "3d" and rec["gps"]["satellites"] == 9
    assert rec["time"] == {"source": "ntp", "synced": True, "est_error_s": 0.01, "gps_offset_s": 0.002}
    assert dark.record["gps"] == {"fix": "none", "status": "no fix"}  # never a stale position
    assert rec["captured"]["wall"].endswith("Z") and isinstance(rec["captured"]["mono_us"], int)
    side = parse_sidecar(Path(still.record_path).read_bytes(), "x")
    assert side.hash == still.record_hash and json.loads(side.body) == rec


def test_chain_and_sequence_continue_across_restart(tmp_path: Path, identity: DeviceIdentity,
                                                    manual_clock: ManualClock) -> None:
    v = Vault(tmp_path / "v")
    s = Sealer(v, identity, device_id="d", site_id="s")
    s.start(moment(manual_clock))
    last = s.seal("still", moment(manual_clock), media=b"a", media_type="image/jpeg", ext="jpg")
    v.close()
    v2 = Vault(tmp_path / "v")
    s2 = Sealer(v2, identity, device_id="d", site_id="s")
    manual_clock.advance(60)
    restart = s2.start(moment(manual_clock), reason="start")
    assert restart.seq == last.seq + 1
    assert restart.record["prev"] == last.record_hash
    assert restart.record["extra"]["previous"] == {"seq": last.seq, "hash": last.record_hash}
    v2.close()


def test_a_record_sealed_by_another_thread_during_start_comes_after_the_restart_record(
        tmp_path: Path, identity: DeviceIdentity, manual_clock: ManualClock) -> None:
    """A receipt the anchor worker seals while the run starts must not slip between the restart record and the
    item it names as previous (a kill -9 loop under load found 'restart record names the wrong previous item')."""
    v = Vault(tmp_path / "v")
    s = Sealer(v, identity, device_id="d", site_id="s")
    s.start(moment(manual_clock))
    s.seal("mark", moment(manual_clock))
    v.close()
    v2 = Vault(tmp_path / "v")
    s2 = Sealer(v2, identity, device_id="d", site_id="s")
    seal = s2.seal
    other: list[threading.Thread] = []

    def seal_with_a_neighbour(kind: str, *args: Any, **kwargs: Any) -> SealedItem:
        if kind == "restart" and not other:  # another thread seals just as the restart record is being sealed
            other.append(threading.Thread(target=lambda: seal("receipt", moment(manual_clock))))
            other[0].start()
            other[0].join(1.0)  # on the fixed code it waits for the restart record to be sealed
        return seal(kind, *args, **kwargs)

    s2.seal = seal_with_a_neighbour  # type: ignore[method-assign]
    restart = s2.start(moment(manual_clock))
    other[0].join(30)
    rows = v2.rows()
    v2.close()
    assert restart.record["extra"]["previous"]["seq"] == restart.seq - 1
    assert [r.kind for r in rows][-2:] == ["restart", "receipt"]


def test_crash_leftovers_are_kept_and_listed(vault: Vault, sealer: Sealer, manual_clock: ManualClock) -> None:
    partial = vault.staging_path("mp4")
    partial.write_bytes(b"half a segment")
    item = sealer.start(moment(manual_clock))
    orphans = item.record["extra"]["orphans"]
    assert len(orphans) == 1 and orphans[0]["size"] == 14
    assert (vault.path / "orphans" / orphans[0]["name"]).read_bytes() == b"half a segment"


def test_listener_failure_does_not_lose_the_item(sealer: Sealer, manual_clock: ManualClock) -> None:
    seen = []

    def bad(item: object) -> None:
        raise RuntimeError("boom")

    sealer.add_listener(bad)
    sealer.add_listener(seen.append)
    item = sealer.start(moment(manual_clock))
    assert Path(item.record_path).exists() and seen == [item]


def test_staged_file_is_moved_into_place(vault: Vault, sealer: Sealer, manual_clock: ManualClock) -> None:
    sealer.start(moment(manual_clock))
    staged = vault.staging_path("mp4")
    staged.write_bytes(b"\x00" * 5000)
    item = sealer.seal("segment", moment(manual_clock), media=staged, media_type="video/mp4", ext="mp4",
                       end=moment(manual_clock))
    assert not staged.exists() and Path(item.media_path or "").stat().st_size == 5000
    assert item.record["end"]["wall"]

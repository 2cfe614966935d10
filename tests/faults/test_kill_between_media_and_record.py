"""kill -9 between the media file and its sidecar (both renamed into items/): the restart moves the unsealed
media to orphans/ and lists it, so the vault verifies and the next record may take that sequence number."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity
from agent.signing.verify import check
from tests.support.helpers import moment


def test_media_without_sidecar_after_a_crash_becomes_an_orphan(tmp_path: Path, identity: DeviceIdentity,
                                                                manual_clock: ManualClock) -> None:
    vault = Vault(tmp_path / "vault")
    sealer = Sealer(vault, identity, device_id="test-device", site_id="test-site")
    sealer.start(moment(manual_clock))
    sealer.seal("still", moment(manual_clock), media=b"a" * 100, media_type="image/jpeg", ext="jpg")
    vault.close()
    # What the kill left: the next still's media in place, its sidecar not yet written, a sidecar temp file.
    bucket = tmp_path / "vault" / "items" / "000000"
    stray = os.urandom(300)
    (bucket / "000000000002.still.jpg").write_bytes(stray)
    (bucket / ".000000000002.still.rec.abc123.tmp").write_bytes(b'{"partial":')
    vault = Vault(tmp_path / "vault")
    sealer = Sealer(vault, identity, device_id="test-device", site_id="test-site")
    restart = sealer.start(moment(manual_clock))
    vault.close()
    assert restart.seq == 2
    names = {o["name"]: o for o in restart.record["extra"]["orphans"]}
    assert names["000000000002.still.jpg"]["sha256"] == hashlib.sha256(stray).hexdigest()
    assert (tmp_path / "vault" / "orphans" / "000000000002.still.jpg").read_bytes() == stray
    rep = check(tmp_path / "vault")
    assert rep.ok, rep.problems

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.core.errors import VaultError
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault, VaultFullError
from agent.signing.keys import DeviceIdentity, init_identity, load_identity
from agent.signing.verify import verify
from tests.support.helpers import moment


def test_index_is_a_cache_rebuilt_from_files(tmp_path: Path, identity: DeviceIdentity,
                                             manual_clock: ManualClock) -> None:
    v = Vault(tmp_path / "v")
    s = Sealer(v, identity, device_id="test-device", site_id="s")
    s.start(moment(manual_clock))
    for _ in range(3):
        s.seal("still", moment(manual_clock), media=b"abc", media_type="image/jpeg", ext="jpg")
    v.close()
    db = sqlite3.connect(tmp_path / "v" / "index.sqlite")
    db.execute("DELETE FROM items WHERE seq >= 2")  # as if we crashed between file and index
    db.commit()
    db.close()
    v2 = Vault(tmp_path / "v")  # catches up from the files
    assert v2.count() == 4 and v2.last() is not None and v2.last()[0] == 3  # type: ignore[index]
    assert v2.usage_bytes() == 9
    assert v2.reindex() == 4
    v2.close()
    for f in (tmp_path / "v").glob("index.sqlite*"):
        f.unlink()
    v3 = Vault(tmp_path / "v")
    assert v3.count() == 4
    s3 = Sealer(v3, identity, device_id="test-device", site_id="s")
    assert s3.next_seq == 4  # the chain continues from the files alone
    v3.close()


def test_quota_stops_new_media_and_deletes_nothing(tmp_path: Path, identity: DeviceIdentity,
                                                   manual_clock: ManualClock) -> None:
    v = Vault(tmp_path / "v", quota_bytes=250)
    s = Sealer(v, identity, device_id="test-device", site_id="s")
    s.start(moment(manual_clock))
    for _ in range(2):
        s.seal("still", moment(manual_clock), media=b"x" * 100, media_type="image/jpeg", ext="jpg")
    with pytest.raises(VaultFullError, match="nothing sealed is deleted"):
        s.seal("still", moment(manual_clock), media=b"x" * 100, media_type="image/jpeg", ext="jpg")
    s.seal("event", moment(manual_clock), extra={"type": "vault_full", "phase": "onset"})  # records still fit
    assert len(list((tmp_path / "v" / "items").rglob("*.jpg"))) == 2
    assert verify(tmp_path / "v").items == 4
    v.close()


def test_vault_refuses_a_different_device_key(tmp_path: Path, identity: DeviceIdentity,
                                              manual_clock: ManualClock) -> None:
    v = Vault(tmp_path / "v")
    Sealer(v, identity, device_id="test-device", site_id="s").start(moment(manual_clock))
    init_identity(tmp_path / "k2", "test-device", "o")
    with pytest.raises(VaultError, match="another device certificate"):
        Sealer(v, load_identity(tmp_path / "k2"), device_id="test-device", site_id="s")
    v.close()


def test_unwritable_vault_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(VaultError, match="cannot create vault"):
        Vault(blocker / "vault")


def test_one_writer_per_vault(tmp_path: Path) -> None:
    v = Vault(tmp_path / "v")
    with pytest.raises(VaultError, match="in use by another agent process"):
        Vault(tmp_path / "v")
    reader = Vault(tmp_path / "v", exclusive=False)  # export/readers do not need the lock
    reader.close()
    v.close()
    Vault(tmp_path / "v").close()  # released on close

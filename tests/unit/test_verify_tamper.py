"""Every kind of tampering the issue names is detected, and verify names the item."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.core.errors import VerificationError
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import init_identity, load_identity
from agent.signing.verify import check, verify
from tests.support.helpers import moment


@pytest.fixture
def filled(tmp_path: Path, sealer: Sealer, vault: Vault, manual_clock: ManualClock) -> Path:
    sealer.start(moment(manual_clock))
    for i in range(6):
        manual_clock.advance(2)
        sealer.seal("still", moment(manual_clock, fix=i % 2 == 0), media=f"jpeg-{i}".encode() * 100,
                    media_type="image/jpeg", ext="jpg", extra={"i": i})
    return vault.path


def item(vault: Path, seq: int, ext: str) -> Path:
    return next((vault / "items" / "000000").glob(f"{seq:012d}.*.{ext}"))


def problems(path: Path) -> list[str]:
    report = check(path)
    assert not report.ok
    return [f"{p['item']}: {p['problem']}" for p in report.problems]


def test_intact_vault_verifies(filled: Path) -> None:
    report = verify(filled)
    assert report.items == 7 and report.first_seq == 0 and report.last_seq == 6
    assert report.kinds == {"restart": 1, "still": 6}


def test_vault_without_index_and_bare_copy_verify(filled: Path, tmp_path: Path) -> None:
    for f in filled.glob("index.sqlite*"):
        f.unlink()
    assert verify(filled).items == 7
    bare = tmp_path / "copy"
    shutil.copytree(filled / "items", bare / "items")
    assert verify(bare).mode == "files"


def test_flipped_media_byte(filled: Path) -> None:
    p = item(filled, 3, "jpg")
    data = bytearray(p.read_bytes())
    data[10] ^= 1
    p.write_bytes(bytes(data))
    assert any("seq 3" in m and "does not match" in m for m in problems(filled))


@pytest.mark.parametrize("field,value", [
    ("seq", 99), ("kind", "event"), ("sealed", {"mono_us": 1}), ("site_id", "elsewhere"), ("captured", {"wall": "x"}),
    ("gps", {"fix": "3d", "lat": 1.0, "lon": 2.0}), ("media", None), ("prev", "0" * 64), ("extra", {"i": 7}),
    ("time", {"source": "gps", "synced": True, "est_error_s": 0, "gps_offset_s": 0}),
])
def test_edited_record_field(filled: Path, field: str, value: object) -> None:
    p = item(filled, 2, "rec")
    body, env = p.read_bytes().split(b"\n")[:2]
    rec = json.loads(body)
    rec[field] = value
    import rfc8785

    p.write_bytes(rfc8785.dumps(rec) + b"\n" + env + b"\n")
    msgs = problems(filled)
    assert any("000000000002" in m and "signature is invalid" in m for m in msgs)


def test_non_canonical_edit_is_rejected(filled: Path) -> None:
    p = item(filled, 2, "rec")
    p.write_bytes(p.read_bytes().replace(b'"kind":"still"', b'"kind": "still"', 1))
    assert any("canonical" in m for m in problems(filled))


def test_deleted_item_from_the_middle(filled: Path) -> None:
    item(filled, 3, "jpg").unlink()
    item(filled, 3, "rec").unlink()
    assert any("missing item(s): seq 3" in m for m in problems(filled))


def test_deleted_media_only(filled: Path) -> None:
    item(filled, 4, "jpg").unlink()
    assert any("seq 4" in m and "missing" in m for m in problems(filled))


def test_swapped_items(filled: Path) -> None:
    a_rec, b_rec = item(filled, 2, "rec"), item(filled, 3, "rec")
    a_jpg, b_jpg = item(filled, 2, "jpg"), item(filled, 3, "jpg")
    tmp_rec, tmp_jpg = a_rec.read_bytes(), a_jpg.read_bytes()
    a_rec.write_bytes(b_rec.read_bytes())
    a_jpg.write_bytes(b_jpg.read_bytes())
    b_rec.write_bytes(tmp_rec)
    b_jpg.write_bytes(tmp_jpg)
    msgs = problems(filled)
    assert any("000000000002" in m and "file name does not match" in m for m in msgs)


def test_duplicated_item(filled: Path) -> None:
    src = item(filled, 2, "rec")
    shutil.copy(src, filled / "items" / "000000" / "000000000002.still.rec.copy")
    dup_dir = filled / "items" / "000001"
    dup_dir.mkdir()
    shutil.copy(src, dup_dir / src.name)
    shutil.copy(item(filled, 2, "jpg"), dup_dir / item(filled, 2, "jpg").name)
    assert any("seq 2" in m and "duplicated" in m for m in problems(filled))


def test_reordered_by_renaming(filled: Path) -> None:
    """Renaming files so the names sort differently still leaves the records' own order, which breaks."""
    for ext in ("rec", "jpg"):
        item(filled, 5, ext).rename(filled / "items" / "000000" / f"000000000009.still.{ext}")
    msgs = problems(filled)
    assert any("file name does not match" in m for m in msgs)


def test_item_signed_by_another_device(filled: Path, tmp_path: Path, manual_clock: ManualClock) -> None:
    other_keys = tmp_path / "other-keys"
    init_identity(other_keys, "test-device", "Test Enterprise")  # same names, different key
    other_vault = Vault(tmp_path / "other-vault")
    other = Sealer(other_vault, load_identity(other_keys), device_id="test-device", site_id="test-site")
    other.start(moment(manual_clock))
    forged = other.seal("still", moment(manual_clock), media=b"forged", media_type="image/jpeg", ext="jpg")
    other_vault.close()
    for ext in ("rec", "jpg"):
        item(filled, 6, ext).unlink()
    target = filled / "items" / "000000"
    # renumbering a foreign record breaks its signature; inserting it as-is breaks key and chain
    shutil.copy(forged.record_path, target / "000000000001.still.rec")
    shutil.copy(forged.media_path or "", target / "000000000001.still.jpg")
    msgs = problems(filled)
    assert any("seq 1" in m or "000000000001" in m for m in msgs)
    assert any("not this device's key" in m or "two different records" in m for m in msgs)


def test_replaced_certificate(filled: Path, tmp_path: Path) -> None:
    other = tmp_path / "k2"
    init_identity(other, "test-device", "Test Enterprise")
    shutil.copy(other / "device.pem", filled / "device" / "cert.pem")
    msgs = problems(filled)
    assert any("not this device's key" in m for m in msgs)
    assert any("device certificate in this evidence is not the one" in m for m in msgs)


def test_unsealed_file_injected(filled: Path) -> None:
    (filled / "items" / "000000" / "000000000004.still.png").write_bytes(b"injected")
    assert any("no sealed record" in m for m in problems(filled))


def test_verify_raises_with_all_problems(filled: Path) -> None:
    item(filled, 1, "jpg").write_bytes(b"changed")
    with pytest.raises(VerificationError) as err:
        verify(filled)
    assert err.value.problems and "seq 1" in err.value.problems[0]


def test_single_item_with_sidecar(filled: Path) -> None:
    report = verify(item(filled, 3, "jpg"))
    assert report.mode == "single" and report.items == 1
    p = item(filled, 3, "jpg")
    p.write_bytes(p.read_bytes() + b"!")
    assert not check(p).ok


def test_garbage_sidecar_is_named_not_a_crash(filled: Path) -> None:
    item(filled, 2, "rec").write_bytes(b"\x00\xffnot json\n")
    msgs = problems(filled)
    assert any("000000000002" in m and "not valid JSON" in m for m in msgs)

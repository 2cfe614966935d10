from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from agent.core.clock import ManualClock, iso_utc
from agent.core.errors import ConfigError, VaultError
from agent.device.sealer import Sealer
from agent.evidence.export import export_bundle
from agent.evidence.vault import Vault
from agent.signing.verify import check, verify
from tests.support.helpers import moment


@pytest.fixture
def filled(sealer: Sealer, vault: Vault, manual_clock: ManualClock) -> tuple[Path, list[int]]:
    sealer.start(moment(manual_clock))
    walls = []
    for i in range(5):
        manual_clock.advance(10)
        walls.append(manual_clock.wall_ns())
        sealer.seal("still", moment(manual_clock), media=bytes([i]) * 50, media_type="image/jpeg", ext="jpg")
    return vault.path, walls


def test_full_bundle_verifies_offline(filled: tuple[Path, list[int]], tmp_path: Path) -> None:
    vault, walls = filled
    out = tmp_path / "bundle.zip"
    res = export_bundle(vault, out)
    assert res.items == 6 and res.first_seq == 0 and res.last_seq == 5
    report = verify(out)
    assert report.mode == "bundle" and report.items == 6
    names = zipfile.ZipFile(out).namelist()
    assert "README.txt" in names and "device/cert.pem" in names
    assert not any("key" in n for n in names)  # never the private key
    readme = zipfile.ZipFile(out).read("README.txt").decode()
    assert "captured start .. end" not in readme
    assert "Range: seq 0..5, captured 20" in readme and f".. {iso_utc(walls[-1])[:19]}" in readme


def test_range_bundle_and_tampered_bundle(filled: tuple[Path, list[int]], tmp_path: Path) -> None:
    vault, walls = filled
    out = tmp_path / "range.zip"
    res = export_bundle(vault, out, since=iso_utc(walls[1]), until=iso_utc(walls[3]))
    assert (res.first_seq, res.last_seq) == (2, 4)
    assert json.loads(zipfile.ZipFile(out).read("MANIFEST.json"))["first_seq"] == 2
    assert verify(out).items == 3
    # drop one item from the middle of the bundle: detected
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(bad, "w") as dst:
        for n in src.namelist():
            if "000000000003" not in n:
                dst.writestr(n, src.read(n))
    report = check(bad)
    assert not report.ok and any("seq 3" in p["problem"] for p in report.problems)


def test_bad_arguments(filled: tuple[Path, list[int]], tmp_path: Path) -> None:
    vault, _ = filled
    with pytest.raises(ConfigError, match="--since"):
        export_bundle(vault, tmp_path / "x.zip", since="yesterday")
    with pytest.raises(VaultError, match="no items"):
        export_bundle(vault, tmp_path / "x.zip", since="2099-01-01T00:00:00Z")
    with pytest.raises(VaultError, match="not a vault"):
        export_bundle(tmp_path, tmp_path / "x.zip")


def test_range_export_is_one_unbroken_run_of_the_chain(sealer: Sealer, vault: Vault, manual_clock: ManualClock,
                                                       tmp_path: Path) -> None:
    """A segment is sealed after the stills it overlaps, with its (earlier) start as capture time: a time range
    must still export every item sealed between its first and last item, or the bundle has holes."""
    sealer.start(moment(manual_clock))
    manual_clock.advance(10)
    seg_start = moment(manual_clock)
    manual_clock.advance(5)
    t_still = manual_clock.wall_ns()
    sealer.seal("still", moment(manual_clock), media=b"a" * 10, media_type="image/jpeg", ext="jpg")  # seq 1
    sealer.seal("segment", seg_start, media=b"b" * 10, media_type="video/mp4", ext="mp4")  # seq 2, captured earlier
    manual_clock.advance(1)
    sealer.seal("still", moment(manual_clock), media=b"c" * 10, media_type="image/jpeg", ext="jpg")  # seq 3
    out = tmp_path / "range.zip"
    res = export_bundle(vault.path, out, since=iso_utc(t_still))
    assert (res.first_seq, res.last_seq, res.items) == (1, 3, 3)
    assert check(out).ok

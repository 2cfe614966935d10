"""`evidence-agent verify FILE` on a lone still or segment: renamed, no sidecar, as evidence travels by e-mail.

The demo seals real stills and segments with C2PA; copies of them are verified from their embedded
manifest alone, then against the vault and an export bundle (found by SHA-256).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.signing.records import parse_sidecar
from tests.support.helpers import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.device.cli", *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    v = tmp_path_factory.mktemp("lone") / "vault"
    r = _cli("demo", "--vault", str(v), "--seconds", "3", "--still-interval", "1", "--segment-seconds", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    return v


def _record(media: Path) -> dict[str, object]:
    return parse_sidecar(media.with_suffix(".rec").read_bytes(), media.name).record


def _same_instant(a: str, b: str) -> bool:
    return dt.datetime.fromisoformat(a.replace("Z", "+00:00")) == dt.datetime.fromisoformat(b.replace("Z", "+00:00"))


def test_renamed_still_verifies_from_its_manifest_alone(vault: Path, tmp_path: Path) -> None:
    still = sorted(vault.glob("items/*/*.still.jpg"))[0]
    lone = tmp_path / "snapshot.jpg"
    shutil.copy(still, lone)
    r = _cli("verify", str(lone), "--json", "--allow-untrusted")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    rec = _record(still)
    assert rep["ok"] and rep["mode"] == "lone" and rep["signature"] == "valid"
    assert rep["device"]["device_id"] == rep["device"]["certificate_cn"] == "demo-device"
    assert rep["device"]["site_id"] == "demo-site"
    assert _same_instant(rep["captured"], rec["captured"]["wall"])  # type: ignore[index]
    assert rep["gps"]["lat"] == pytest.approx(rec["gps"]["lat"], abs=1e-6)  # type: ignore[index]
    assert rep["exif"]["serial"] == "demo-device"
    assert rep["chain"].startswith("not checked")
    human = _cli("verify", str(lone), "--ca", str(vault / "device" / "chain.pem"))
    assert human.returncode == 0, human.stdout
    assert "chain:     trusted" in human.stdout and "demo-device at site demo-site" in human.stdout


def test_against_vault_and_bundle_finds_the_sealed_record(vault: Path, tmp_path: Path) -> None:
    seg = sorted(vault.glob("items/*/*.segment.mp4"))[0]
    lone = tmp_path / "clip.mp4"
    shutil.copy(seg, lone)
    bundle = tmp_path / "bundle.zip"
    assert _cli("export", str(vault), "--out", str(bundle)).returncode == 0
    for source in (vault, bundle):
        r = _cli("verify", str(lone), "--against", str(source), "--json", "--allow-untrusted")
        assert r.returncode == 0, r.stdout + r.stderr
        a = json.loads(r.stdout)["against"]
        assert a["found"] and a["seq"] == _record(seg)["seq"] and a["kind"] == "segment" and a["source_ok"]


def test_tampered_or_foreign_files_fail(vault: Path, tmp_path: Path) -> None:
    still = sorted(vault.glob("items/*/*.still.jpg"))[0]
    data = bytearray(still.read_bytes())
    data[-200] ^= 0xFF  # one pixel byte
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(bytes(data))
    r = _cli("verify", str(bad), "--json")
    assert r.returncode == 1
    assert any("dataHash.mismatch" in p for p in json.loads(r.stdout)["problems"])
    r = _cli("verify", str(bad), "--against", str(vault))
    assert r.returncode == 1 and "no sealed record" in r.stdout
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(b"\xff\xd8\xff\xd9")
    r = _cli("verify", str(plain))
    assert r.returncode == 1 and "C2PA" in r.stdout
    r = _cli("verify", str(still.with_suffix(".jpg")), "--against", str(tmp_path / "missing"))
    assert r.returncode == 2 and "--against" in r.stderr

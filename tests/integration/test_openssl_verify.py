"""A third party checks the evidence with sha256sum, sed and openssl alone (docs/evidence-format.md).

The anchored vault comes from `evidence-agent run --config` with a real RFC 3161 TSA (openssl ts behind HTTP);
the docs' `sh doc-test` blocks are run exactly as written against a copy of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from tests.support.helpers import REPO, moment
from tests.support.tsa_server import LocalTsa

SCRIPT = REPO / "scripts" / "verify-with-openssl.sh"
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command line not installed")


@pytest.fixture
def filled(sealer: Sealer, vault: Vault, manual_clock: ManualClock) -> Path:
    sealer.start(moment(manual_clock))
    for i in range(4):
        manual_clock.advance(1)
        sealer.seal("still", moment(manual_clock, fix=i != 2), media=b"\xff\xd8" + bytes([i]) * 999,
                    media_type="image/jpeg", ext="jpg", extra={"note": "line\nbreak \"quoted\""})
    sealer.seal("event", moment(manual_clock), extra={"type": "lens_covered", "phase": "onset"})
    return vault.path


def run(vault: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The script with options (``--tsa-ca FILE``) before the vault and witness notes (``*.note``) after it."""
    opts = [a for a in args if not a.endswith(".note")]
    witness = [a for a in args if a.endswith(".note")]
    return subprocess.run(["bash", str(SCRIPT), *opts, str(vault), *witness], capture_output=True, text=True,
                          timeout=120)


def test_openssl_alone_verifies_a_vault(filled: Path) -> None:
    res = run(filled)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK 6 records, 0 checkpoint(s), 0 of 0 TSA token(s) verified with openssl" in res.stdout
    assert "NOTE no checkpoint notes" in res.stdout


def test_openssl_alone_catches_tampering(filled: Path) -> None:
    media = next((filled / "items" / "000000").glob("000000000002.still.jpg"))
    media.write_bytes(media.read_bytes()[:-1] + b"X")
    rec = next((filled / "items" / "000000").glob("000000000003.still.rec"))
    rec.write_bytes(rec.read_bytes().replace(b'"kind":"still"', b'"kind":"event"'))
    res = run(filled)
    assert res.returncode == 1
    assert "000000000002.still.rec: media" in res.stdout
    assert "000000000003.still.rec: bad signature" in res.stdout


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A vault written by `evidence-agent run` with TSA anchoring on; returns (vault, TSA root PEM)."""
    d = tmp_path_factory.mktemp("anchored")
    tsa = LocalTsa(d / "tsa")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    (d / "agent.toml").write_text(f"""
[device]
id = "cam-7"
site_id = "site-3"
[identity]
key_dir = "{d}/keys"
[vault]
path = "{d}/vault"
[capture]
backend = "synthetic"
width = 320
height = 240
still_interval_s = 1
[gps]
source = "simulated"
[video]
segment_seconds = 2
[anchor]
batch_interval_s = 2
[anchor.tsa]
url = "{tsa.url}"
ca_file = "{tsa.ca_file}"
""")
    try:
        subprocess.run([sys.executable, "-m", "agent.device.cli", "keys", "init", "--key-dir", str(d / "keys"),
                        "--device-id", "cam-7"], cwd=REPO, env=env, check=True, capture_output=True)
        r = subprocess.run([sys.executable, "-m", "agent.device.cli", "run", "--config", str(d / "agent.toml"),
                            "--seconds", "7"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        tsa.close()
    notes = sorted((d / "vault" / "log" / "checkpoints").glob("*.note"))
    assert len(notes) >= 2 and len(list((d / "vault" / "log" / "anchors").glob("*-tsa.json"))) == len(notes)
    return d / "vault", d / "tsa" / "ca.pem"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def _newest(vault: Path) -> tuple[Path, int]:
    note = sorted((vault / "log" / "checkpoints").glob("*.note"))[-1]
    return note, int(note.name[:12])


def test_docs_commands_run_as_written(anchored: tuple[Path, Path], tmp_path: Path) -> None:
    vault, tsa_root = anchored
    _copy(vault, tmp_path / "vault")
    shutil.copy(tsa_root, tmp_path / "tsa-root.pem")
    (tmp_path / "scripts").symlink_to(REPO / "scripts")
    blocks = []
    for doc in ("evidence-format.md", "anchoring.md"):
        blocks += re.findall(r"^```sh doc-test\n(.*?)^```", (REPO / "docs" / doc).read_text(), re.S | re.M)
    assert len(blocks) >= 2
    res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", "\n".join(blocks)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    for expected in ("vault/device/cert.pem: OK", "key id OK", "media OK", "chain link OK", "tail OK",
                     "note_sha256 OK", "Verification: OK"):
        assert expected in res.stdout, (expected, res.stdout)
    assert res.stdout.count("Verified OK") == 2


def test_script_verifies_anchored_vault_with_tsa_tokens(anchored: tuple[Path, Path]) -> None:
    vault, tsa_root = anchored
    res = run(vault, "--tsa-ca", str(tsa_root))
    assert res.returncode == 0, res.stdout + res.stderr
    n = len(list((vault / "log" / "checkpoints").glob("*.note")))
    assert f"{n} checkpoint(s), {n} of {n} TSA token(s) verified with openssl" in res.stdout


def test_script_catches_head_deletion(anchored: tuple[Path, Path], tmp_path: Path) -> None:
    v = _copy(anchored[0], tmp_path / "v")
    for p in (v / "items" / "000000").glob("000000000000.*"):
        p.unlink()
    res = run(v)
    assert res.returncode == 1
    assert "the chain starts at seq 1, not at seq 0 with the genesis prev" in res.stdout


def test_script_catches_tail_deletion(anchored: tuple[Path, Path], tmp_path: Path) -> None:
    v = _copy(anchored[0], tmp_path / "v")
    _note, size = _newest(v)
    for rec in (v / "items" / "000000").glob("*"):
        if int(rec.name[:12]) >= size - 3:  # the newest records, some of them covered by the checkpoint
            rec.unlink()
    res = run(v)
    assert res.returncode == 1
    assert f"covers seq 0..{size - 1} but the last record is seq {size - 4} (tail deleted)" in res.stdout


def test_tail_deleted_with_its_checkpoints_needs_a_witness(anchored: tuple[Path, Path], tmp_path: Path) -> None:
    """The limit the doc states: deleting the newest notes too hides the tail, unless a note is held elsewhere."""
    v = _copy(anchored[0], tmp_path / "v")
    note, size = _newest(v)
    witness = tmp_path / "witness.note"
    shutil.copy(note, witness)
    for rec in (v / "items" / "000000").glob("*"):
        if int(rec.name[:12]) >= size - 3:
            rec.unlink()
    for p in [*(v / "log" / "checkpoints").glob("*.note"), *(v / "log" / "anchors").glob("*.json")]:
        if int(p.name[:12]) >= size - 3:
            p.unlink()
    assert run(v).returncode == 0
    res = run(v, str(witness))
    assert res.returncode == 1 and "tail deleted" in res.stdout


def test_script_catches_checkpoint_tampering(anchored: tuple[Path, Path], tmp_path: Path) -> None:
    vault, tsa_root = anchored
    v = _copy(vault, tmp_path / "v")
    note, _size = _newest(v)
    lines = note.read_text().split("\n")
    lines[1] = str(int(lines[1]) - 1)  # claim a smaller tree: would hide the newest leaf
    note.write_text("\n".join(lines))
    res = run(v, "--tsa-ca", str(tsa_root))
    assert res.returncode == 1
    assert f"{note.name}: no valid signature by the device key (note edited or forged)" in res.stdout
    assert f"{note.name[:12]}-tsa.json: note_sha256 does not match" in res.stdout
    assert f"{note.name[:12]}-tsa.json: TSA token does not verify" in res.stdout

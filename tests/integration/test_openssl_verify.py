"""A third party checks the evidence with sha256sum, sed and openssl alone (docs/evidence-format.md)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from tests.support.helpers import REPO, moment

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


def run(vault: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), str(vault)], capture_output=True, text=True, timeout=60)


def test_openssl_alone_verifies_a_vault(filled: Path) -> None:
    res = run(filled)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK 6 records verified with openssl" in res.stdout


def test_openssl_alone_catches_tampering(filled: Path) -> None:
    media = next((filled / "items" / "000000").glob("000000000002.still.jpg"))
    media.write_bytes(media.read_bytes()[:-1] + b"X")
    rec = next((filled / "items" / "000000").glob("000000000003.still.rec"))
    rec.write_bytes(rec.read_bytes().replace(b'"kind":"still"', b'"kind":"event"'))
    res = run(filled)
    assert res.returncode == 1
    assert "000000000002.still.rec: media" in res.stdout
    assert "000000000003.still.rec: bad signature" in res.stdout

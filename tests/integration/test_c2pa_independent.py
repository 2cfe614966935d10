"""Our Content Credentials read by a C2PA implementation that is not c2pa-rs: @trustnxt/c2pa-ts (TypeScript).

`scripts/install-and-test.sh` installs it from npm into .cache/c2pa-ts; without it (or node) the test skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.signing.records import parse_sidecar
from tests.support.helpers import REPO

TOOL = REPO / ".cache" / "c2pa-ts"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (TOOL / "node_modules" / "@trustnxt" / "c2pa-ts").is_dir(),
    reason="node or @trustnxt/c2pa-ts missing (scripts/install-and-test.sh installs it into .cache/c2pa-ts)")


def _read(path: Path) -> tuple[int, dict[str, object]]:
    script = TOOL / "c2pa-ts-read.mjs"
    shutil.copy(REPO / "scripts" / "c2pa-ts-read.mjs", script)  # ESM resolves packages beside the script
    r = subprocess.run(["node", str(script), str(path)], capture_output=True, text=True, timeout=60)
    return r.returncode, json.loads(r.stdout or "{}")


def test_c2pa_ts_validates_a_demo_still_and_sees_time_and_place(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    subprocess.run([sys.executable, "-m", "agent.device.cli", "demo", "--vault", str(vault), "--seconds", "3",
                    "--still-interval", "1", "--segment-seconds", "2"], cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, capture_output=True)
    still = sorted(vault.glob("items/*/*.still.jpg"))[0]
    record = parse_sidecar(still.with_suffix(".rec").read_bytes(), still.name).record
    rc, out = _read(still)
    assert rc == 0 and out["valid"], out
    assert "claimSignature.validated" in out["codes"] and "assertion.dataHash.match" in out["codes"]  # type: ignore[operator]
    meta = out["metadata"]
    assert isinstance(meta, dict)
    assert meta["DateTimeOriginal"].startswith(record["captured"]["wall"][:19])
    assert meta["GPSLatitude"].endswith("N" if record["gps"]["lat"] >= 0 else "S")
    data = bytearray(still.read_bytes())
    data[-200] ^= 0xFF
    (tmp_path / "bad.jpg").write_bytes(bytes(data))
    rc, out = _read(tmp_path / "bad.jpg")
    assert rc == 1 and "assertion.dataHash.mismatch" in out["codes"]  # type: ignore[operator]

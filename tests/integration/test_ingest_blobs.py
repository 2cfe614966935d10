"""`evidence-officer ingest --blobs DIR --index FILE`: every media file lands in the content-addressed store.

Through the real CLI and a real Mosquitto: a fleet sends records with media; each media file must be in
the blob store under its SHA-256 (read-only, hashing to its name), the index must point at that blob,
and the per-device vault must still verify against the fleet CA. Two placements: a folder on OUT's
filesystem (the file is hard-linked, not copied) and one on another filesystem (copied).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.customs.store.blobs import blob_key
from agent.customs.store.model import Query
from agent.customs.store.sqlite import SqliteIndex
from tests.support.broker import Mosquitto
from tests.support.helpers import REPO, wait_for
from tests.support.sim_fleet import Fleet, Publisher

DEVICES = 4
RECORDS = 120


def _other_filesystem(tmp_path: Path) -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the test's temp folder (to test the copy path)")
    return Path(tempfile.mkdtemp(prefix="blobs-", dir=shm))


@pytest.mark.parametrize("placement", ["same-filesystem", "other-filesystem"])
def test_ingest_puts_every_media_file_in_the_blob_store(tmp_path: Path, placement: str) -> None:
    blobs = tmp_path / "blobs" if placement == "same-filesystem" else _other_filesystem(tmp_path)
    fleet = Fleet(DEVICES, tmp_path / "ca.pem")
    messages = fleet.restart_messages() + list(fleet.burst(RECORDS - DEVICES, media_every=3, media_size=5000))
    out, index_file = tmp_path / "out", tmp_path / "index.sqlite"
    with Mosquitto(tmp_path / "broker", tls=False) as broker:
        ingest = subprocess.Popen(
            [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", broker.url, "--out", str(out),
             "--client-id", "ingest-blobs", "--trust-ca", str(fleet.ca_file), "--index", str(index_file),
             "--blobs", str(blobs), "--idle", "4"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            wait_for(lambda: "as ingest-blobs" in broker.log_text() or ingest.poll() is not None, timeout=90)
            assert ingest.poll() is None, ingest.communicate()[1][-2000:]
            pub = Publisher("127.0.0.1", broker.port, "fleet-blobs")
            pub.send(messages)
            assert pub.wait_acked(pub.sent, 60)
            pub.close()
            _, err = ingest.communicate(timeout=300)
        finally:
            if ingest.poll() is None:
                ingest.kill()
    assert ingest.returncode == 0, err[-3000:]

    index = SqliteIndex(index_file)
    rows = [r for r in index.iter_items(Query(limit=500)) if r.media_sha256]
    index.close()
    assert len(rows) >= RECORDS // 3 - DEVICES
    for row in rows:
        assert row.media_done, f"{row.device} seq {row.seq}: media not stored"
        assert row.media_sha256 is not None
        blob = blobs / blob_key(row.media_sha256)
        assert blob.is_file(), f"{row.device} seq {row.seq}: no blob {blob}"
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == row.media_sha256
        assert not blob.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), "a blob must be read-only"
        in_vault = next((out / row.device / "items").rglob(str(row.media_name)))
        same_inode = blob.stat().st_ino == in_vault.stat().st_ino
        assert same_inode == (placement == "same-filesystem"), "hard link on one filesystem, a copy otherwise"
    # the index points at the blob, not at a path a device's values chose
    db = sqlite3.connect(index_file)
    blobs_named = {r[0] for r in db.execute("SELECT media_blob FROM items WHERE media_sha256 IS NOT NULL")}
    db.close()
    assert blobs_named == {blob_key(str(r.media_sha256)) for r in rows}
    # the per-device vault still verifies on its own against the fleet CA
    device = rows[0].device
    verify = subprocess.run([sys.executable, "-m", "agent.device.cli", "verify", str(out / device),
                             "--ca", str(fleet.ca_file)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]

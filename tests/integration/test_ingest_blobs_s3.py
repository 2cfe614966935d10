"""`evidence-officer ingest --blobs s3://bucket/prefix` against an S3-compatible server with object lock.

Through the real CLI, a real Mosquitto and an S3 server process (tests/support/s3_server.py):
* every media file is an object named by its SHA-256, under the bucket's COMPLIANCE retention (a delete
  is refused), and the index points at it;
* the store is down when the fleet sends (multi-chunk media): nothing is refused or lost — the
  messages stay unacknowledged and are retried — and once the store is back, everything is stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from agent.customs.store.blobs import blob_key
from agent.customs.store.model import ItemRow, Query
from agent.customs.store.sqlite import SqliteIndex
from tests.support.broker import Mosquitto, free_port
from tests.support.helpers import REPO, wait_for
from tests.support.s3_server import BUCKET, S3Server, moto_server_or_skip
from tests.support.sim_fleet import Fleet, Publisher

DEVICES = 3
RECORDS = 45
PREFIX = "customs/"


def _run(tmp_path: Path, s3: S3Server, *, store_down_first: bool) -> tuple[subprocess.CompletedProcess[str],
                                                                              list[ItemRow]]:
    fleet = Fleet(DEVICES, tmp_path / "ca.pem")
    # 120 kB media: three 48 kB chunks each, so a retry must survive a half-stored set
    messages = fleet.restart_messages() + list(fleet.burst(RECORDS - DEVICES, media_every=3, media_size=120_000))
    out, index_file = tmp_path / "out", tmp_path / "index.sqlite"
    if not store_down_first:
        s3.start()
    with Mosquitto(tmp_path / "broker", tls=False) as broker:
        ingest = subprocess.Popen(
            [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", broker.url, "--out", str(out),
             "--client-id", "ingest-s3", "--trust-ca", str(fleet.ca_file), "--index", str(index_file),
             "--blobs", f"s3://{BUCKET}/{PREFIX}", "--idle", "20" if store_down_first else "5", "--batch", "16"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **s3.env}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: "as ingest-s3" in broker.log_text() or ingest.poll() is not None, timeout=90)
            assert ingest.poll() is None, ingest.communicate()[1][-2000:]
            pub = Publisher("127.0.0.1", broker.port, "fleet-s3")
            pub.send(messages)
            assert pub.wait_acked(pub.sent, 60)
            pub.close()
            if store_down_first:
                time.sleep(6)  # the ingest meets the unreachable store and keeps retrying
                s3.start()
            stdout, stderr = ingest.communicate(timeout=400)
        finally:
            if ingest.poll() is None:
                ingest.kill()
    index = SqliteIndex(index_file)
    rows = [r for r in index.iter_items(Query(limit=500)) if r.media_sha256]
    index.close()
    return subprocess.CompletedProcess(ingest.args, ingest.returncode, stdout, stderr), rows


def _check_objects(s3: S3Server, rows: list[ItemRow]) -> None:
    client = s3.client()
    assert len(rows) == (RECORDS - DEVICES) // 3
    for row in rows:
        assert row.media_done and row.media_sha256 is not None, f"{row.device} seq {row.seq}: media not stored"
        body = client.get_object(Bucket=BUCKET, Key=PREFIX + blob_key(row.media_sha256))["Body"].read()
        assert hashlib.sha256(body).hexdigest() == row.media_sha256


def test_media_lands_in_a_locked_bucket_named_by_content(tmp_path: Path) -> None:
    moto_server_or_skip()
    s3 = S3Server()
    try:
        done, rows = _run(tmp_path, s3, store_down_first=False)
        assert done.returncode == 0, done.stderr[-3000:]
        _check_objects(s3, rows)
        client = s3.client()
        version = client.list_object_versions(Bucket=BUCKET, Prefix=PREFIX)["Versions"][0]
        with pytest.raises(ClientError, match="AccessDenied"):  # COMPLIANCE retention: no one deletes evidence
            client.delete_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
    finally:
        s3.stop()


def test_store_down_loses_nothing_and_refuses_nothing(tmp_path: Path) -> None:
    moto_server_or_skip()
    s3 = S3Server(port=free_port())  # not started yet: the ingest finds nothing listening there
    try:
        done, rows = _run(tmp_path, s3, store_down_first=True)
        report = json.loads(done.stdout)
        assert done.returncode == 0, done.stderr[-3000:]
        assert report["findings"] == [], report
        assert "could not be stored; retrying" in done.stderr  # it did meet the outage
        _check_objects(s3, rows)
    finally:
        s3.stop()

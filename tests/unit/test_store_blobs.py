"""Content-addressed, write-once evidence blobs: on a filesystem path, and in S3 (request shapes, no network)."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from agent.customs.store.blobs import BlobError, FileBlobs, blob_key
from agent.customs.store.s3 import S3Blobs


def _file(tmp_path: Path, data: bytes, name: str = "media.bin") -> tuple[Path, str]:
    p = tmp_path / name
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


def test_file_blobs_are_named_by_content_and_never_replaced(tmp_path: Path) -> None:
    blobs = FileBlobs(tmp_path / "blobs")
    src, sha = _file(tmp_path, b"evidence bytes")
    key = blobs.put_file(sha, src)
    assert key == blob_key(sha) and blobs.exists(sha)
    stored = blobs.path_of(sha)
    assert stored.stat().st_mode & 0o222 == 0  # read-only
    assert blobs.put_file(sha, src) == key  # idempotent
    other, _ = _file(tmp_path, b"something else", "other.bin")
    with pytest.raises(BlobError, match="does not hash"):
        blobs.put_file(sha, other)  # bytes that do not match their name are refused
    with blobs.open(sha) as fh:
        assert fh.read() == b"evidence bytes"
    assert blobs.check(sha)
    assert list((tmp_path / "blobs").rglob(".in-*")) == []


def test_a_name_from_the_wire_cannot_escape(tmp_path: Path) -> None:
    with pytest.raises(BlobError):
        FileBlobs(tmp_path).put_file("../../etc/passwd", tmp_path)


def test_concurrent_puts_of_one_blob_store_it_once(tmp_path: Path) -> None:
    blobs = FileBlobs(tmp_path / "blobs")
    src, sha = _file(tmp_path, b"x" * 100_000)
    errors: list[BaseException] = []

    def put() -> None:
        try:
            blobs.put_file(sha, src)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and blobs.check(sha)
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1


def _s3() -> tuple[S3Blobs, Stubber]:
    client = boto3.client("s3", region_name="eu-central-1", aws_access_key_id="test", aws_secret_access_key="test")
    return S3Blobs("customs-evidence", client=client, retention_days=3650), Stubber(client)


def test_s3_put_is_conditional_checksummed_and_locked(tmp_path: Path) -> None:
    blobs, stub = _s3()
    src, sha = _file(tmp_path, b"media")
    stub.add_response("put_object", {}, {
        "Bucket": "customs-evidence", "Key": f"evidence/{blob_key(sha)}", "Body": ANY, "IfNoneMatch": "*",
        "ChecksumAlgorithm": "SHA256", "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha)).decode(),
        "ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": ANY})
    stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
    with stub:
        assert blobs.put_file(sha, src) == f"evidence/{blob_key(sha)}"
        assert blobs.put_file(sha, src) == f"evidence/{blob_key(sha)}"  # already there: write-once holds
    stub.assert_no_pending_responses()


def test_s3_errors_name_the_object(tmp_path: Path) -> None:
    blobs, stub = _s3()
    src, sha = _file(tmp_path, b"media")
    stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
    stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
    stub.add_response("get_object", {"Body": io.BytesIO(b"media")},  # type: ignore[dict-item]
                      {"Bucket": "customs-evidence", "Key": f"evidence/{blob_key(sha)}", "ChecksumMode": "ENABLED"})
    with stub:
        with pytest.raises(BlobError, match="AccessDenied"):
            blobs.put_file(sha, src)
        assert not blobs.exists(sha)
        assert blobs.open(sha).read() == b"media"

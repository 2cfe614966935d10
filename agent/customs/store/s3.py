"""Blobs in an S3-compatible bucket (boto3): for a cluster whose evidence lives in object storage.

Write-once is enforced by the bucket, not by us: ``put_object`` carries ``If-None-Match: *`` (the
object is created only if the key is new; S3, MinIO and Ceph RGW honour it) and ``x-amz-checksum-sha256``
(the server recomputes the SHA-256 and rejects a mismatch). For evidence that must survive a
compromised worker, create the bucket with **Object Lock** enabled and pass ``retention_days``: every
object is then written in ``COMPLIANCE`` mode (no one, root account included, can delete or overwrite
it before the date) — or set a bucket default retention and leave ``retention_days`` unset. The worker
credentials need only ``s3:PutObject``, ``s3:PutObjectRetention``, ``s3:GetObject`` and ``s3:HeadObject``.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from agent.customs.store.blobs import BlobError, BlobStore, blob_key, sha256_of

if TYPE_CHECKING:
    from agent.customs.store.durable import SyncBatch


class S3Blobs(BlobStore):
    def __init__(self, bucket: str, *, prefix: str = "evidence/", retention_days: int | None = None,
                 client: Any = None, endpoint_url: str | None = None) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            # few, quick retries: an unreachable store keeps the message unacknowledged and the ingest's
            # flow control retries it with its own backoff, without holding the store lock for minutes
            client = boto3.client("s3", endpoint_url=endpoint_url, config=Config(
                retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=120))
        self.s3 = client
        self.bucket = bucket
        self.prefix = prefix
        self.retention_days = retention_days

    def key_of(self, sha256: str) -> str:
        return self.prefix + blob_key(sha256)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def put_file(self, sha256: str, path: Path, batch: SyncBatch | None = None) -> str:
        """Durable when S3 answers (``batch`` is not needed)."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key_of(sha256)
        if sha256_of(path) != sha256:  # S3 checks it too; MinIO/moto-style servers may not
            raise BlobError(f"{path} does not hash to {sha256[:16]}… (not stored)")
        args: dict[str, Any] = {
            "Bucket": self.bucket, "Key": key, "IfNoneMatch": "*",
            # an object-lock bucket refuses a put without a checksum *algorithm* header (Content-MD5 or this)
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha256)).decode(),
        }
        if self.retention_days is not None:
            args["ObjectLockMode"] = "COMPLIANCE"
            args["ObjectLockRetainUntilDate"] = dt.datetime.now(dt.UTC) + dt.timedelta(days=self.retention_days)
        try:
            with open(path, "rb") as body:
                self.s3.put_object(Body=body, **args)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return key  # already stored (by us earlier, or another worker): write-once holds
            raise BlobError(f"s3://{self.bucket}/{key}: {code or exc}") from exc
        except BotoCoreError as exc:  # endpoint unreachable, credentials missing: try again later
            raise BlobError(f"s3://{self.bucket}/{key}: {exc}") from exc
        return key

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.key_of(sha256))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise BlobError(f"s3://{self.bucket}/{self.key_of(sha256)}: {exc}") from exc
        return True

    def open(self, sha256: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            got = self.s3.get_object(Bucket=self.bucket, Key=self.key_of(sha256), ChecksumMode="ENABLED")
        except ClientError as exc:
            raise BlobError(f"s3://{self.bucket}/{self.key_of(sha256)}: {exc}") from exc
        return cast(BinaryIO, got["Body"])

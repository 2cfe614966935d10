"""Open what the ingest options name: the index (`--index`: PostgreSQL URL or SQLite path) and the blob store
(`--blobs`: folder or s3://bucket/prefix)."""

from __future__ import annotations

from pathlib import Path

from agent.customs.store.base import Index
from agent.customs.store.blobs import BlobError, BlobStore, FileBlobs


def open_index(spec: str) -> Index:
    """``postgresql://user@host/db`` (psycopg 3) or a path to a SQLite file; migrated before use."""
    index: Index
    if spec.startswith(("postgresql://", "postgres://")):
        from agent.customs.store.postgres import PostgresIndex

        index = PostgresIndex(spec)
    else:
        from agent.customs.store.sqlite import SqliteIndex

        index = SqliteIndex(Path(spec))
    index.migrate()
    return index


def open_blobs(spec: str) -> BlobStore:
    """``s3://bucket/prefix`` (boto3; endpoint and credentials from the usual AWS_* environment, e.g.
    ``AWS_ENDPOINT_URL`` for MinIO or Ceph) or a folder path (created if missing)."""
    if spec.startswith("s3://"):
        from agent.customs.store.s3 import S3Blobs

        bucket, _, prefix = spec[5:].partition("/")
        if not bucket:
            raise BlobError(f"{spec!r} names no bucket (s3://bucket/prefix)")
        return S3Blobs(bucket, prefix=prefix.rstrip("/") + "/" if prefix else "evidence/")
    try:
        return FileBlobs(Path(spec))
    except OSError as exc:
        raise BlobError(f"{spec}: cannot use as a blob folder: {exc.strerror or exc}") from exc

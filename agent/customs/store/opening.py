"""Open what the ingest options name: the index (`--index`: PostgreSQL URL or SQLite path) and the blob store
(`--blobs`: folder or s3://bucket/prefix), and the index for a reader (the console)."""

from __future__ import annotations

from pathlib import Path

from agent.customs.store.base import SCHEMA_VERSION, Index, IndexError_
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


def open_index_reader(spec: str) -> Index:
    """The same index for a reader (the console): never created, migrated or written through this handle."""
    index: Index
    if spec.startswith(("postgresql://", "postgres://")):
        from agent.customs.store.postgres import PostgresIndex

        index = PostgresIndex(spec, readonly=True)
    else:
        from agent.customs.store.sqlite import SqliteIndex

        index = SqliteIndex(Path(spec), readonly=True)
    try:
        version = index.schema_version()
    except Exception:
        index.close()
        raise
    if version is None or version > SCHEMA_VERSION:
        index.close()
        raise IndexError_("no index schema yet (run evidence-officer ingest --index first)" if version is None else
                          f"index schema version {version} is newer than this software ({SCHEMA_VERSION})")
    return index

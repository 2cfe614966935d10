"""Open the index an ``--index`` option names: a PostgreSQL URL, or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

from agent.customs.store.base import SCHEMA_VERSION, Index, IndexError_


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

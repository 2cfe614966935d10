"""Open the index an ``--index`` option names: a PostgreSQL URL, or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

from agent.customs.store.base import Index


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

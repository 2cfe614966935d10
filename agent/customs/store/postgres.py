"""PostgreSQL index (psycopg 3): the shared index of a customs region's ingest workers and console.

Every worker holds one connection; a batch of messages is one transaction. Concurrent workers never
wait on each other except on the same device row (``devices`` counters), and inserts of the same item
by two workers resolve with ``ON CONFLICT DO NOTHING``. Migrations run under a transaction-scoped
advisory lock, so a fleet of workers starting together migrates once.
"""

from __future__ import annotations

from typing import Any

from agent.customs.store.base import IndexError_
from agent.customs.store.sql import Dialect, SqlIndex

POSTGRES = Dialect(big="BIGINT", json="JSONB", real="DOUBLE PRECISION", serial="BIGSERIAL PRIMARY KEY",
                   max="GREATEST", param="%s")
MIGRATION_LOCK = 0x45564944  # "EVID": pg_advisory_xact_lock key for schema migrations


class PostgresIndex(SqlIndex):
    def __init__(self, dsn: str, *, connect_timeout: int = 10, readonly: bool = False) -> None:
        import psycopg
        from psycopg.conninfo import make_conninfo

        try:
            conninfo = make_conninfo(dsn, options="-c default_transaction_read_only=on") if readonly else dsn
            conn: Any = psycopg.connect(conninfo, connect_timeout=connect_timeout, autocommit=False)
        except psycopg.Error as exc:
            raise IndexError_(f"cannot open the PostgreSQL index {_redact(dsn)}: {exc}".strip()) from exc
        super().__init__(conn, POSTGRES)

    def _lock_migrations(self) -> None:
        self._x("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))


def _redact(dsn: str) -> str:
    """A DSN for messages: never print a password."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return dsn

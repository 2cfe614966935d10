"""PostgreSQL index (psycopg 3): the shared index of a customs region's ingest workers and console.

Every worker holds one connection; a batch of messages is one transaction. Concurrent workers never
wait on each other except on the same device row (``devices`` counters), and inserts of the same item
by two workers resolve with ``ON CONFLICT DO NOTHING``. Migrations run under a transaction-scoped
advisory lock, so a fleet of workers starting together migrates once.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.customs.store.base import IndexError_
from agent.customs.store.sql import Dialect, SqlIndex

POSTGRES = Dialect(big="BIGINT", json="JSONB", real="DOUBLE PRECISION", serial="BIGSERIAL PRIMARY KEY",
                   max="GREATEST", param="%s")
log = logging.getLogger(__name__)
MIGRATION_LOCK = 0x45564944  # "EVID": pg_advisory_xact_lock key for schema migrations


class PostgresIndex(SqlIndex):
    def __init__(self, dsn: str, *, connect_timeout: int = 10, readonly: bool = False) -> None:
        from psycopg.conninfo import make_conninfo

        self._dsn = dsn
        self._conninfo = make_conninfo(dsn, options="-c default_transaction_read_only=on") if readonly else dsn
        self._timeout = connect_timeout
        super().__init__(self._connect(), POSTGRES)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self._conninfo, connect_timeout=self._timeout, autocommit=False)
        except psycopg.Error as exc:
            raise IndexError_(f"cannot open the PostgreSQL index {_redact(self._dsn)}: {exc}".strip()) from exc

    def connection(self) -> Any:
        """The one connection of this worker (the ingest's group state writes on it too)."""
        if self.conn is None:
            raise IndexError_(f"the PostgreSQL index {_redact(self._dsn)} is closed")
        return self.conn

    def reconnect_if_lost(self) -> bool:
        """A connection the server dropped (restart, failover, idle kill) is opened again; True if it was.

        Raises IndexError_ while the server cannot be reached: the caller's messages stay unacknowledged
        and are retried, so a lost database pauses the ingest without losing anything.
        """
        if self.conn is not None and not self.conn.broken and not self.conn.closed:
            return False
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.conn = self._connect()
        log.warning("reconnected to the PostgreSQL index %s", _redact(self._dsn))
        return True

    def lock_migrations(self) -> None:
        """Serialise migrators across workers (transaction-scoped advisory lock)."""
        self._x("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def _lock_migrations(self) -> None:
        self.lock_migrations()


def _redact(dsn: str) -> str:
    """A DSN for messages: never print a password."""
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return dsn

"""SQLite index: the default for one officer on a laptop (a file next to the evidence folder).

Several ``--share`` workers on one machine may share the file: each batch is one ``BEGIN IMMEDIATE``
transaction, so they take turns per batch (not per message). Beyond one machine, use PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.customs.store.base import IndexError_
from agent.customs.store.sql import Dialect, SqlIndex

SQLITE = Dialect(big="INTEGER", json="TEXT", real="REAL", serial="INTEGER PRIMARY KEY AUTOINCREMENT",
                 max="MAX", param="?")


class SqliteIndex(SqlIndex):
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        if readonly:  # a reader (the console): the file must exist and this connection can never write
            if not path.is_file():
                raise IndexError_(f"{path}: no such index file (evidence-officer ingest --index creates it)")
            conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        super().__init__(conn, SQLITE)
        self.path = path

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

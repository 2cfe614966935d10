"""The group state in ``OUT/.ingest/state.sqlite``: workers on one machine, taking turns per batch.

The file and its lock must be local to the workers (SQLite's WAL does not work on a network
filesystem), so a group using it runs on one machine. Each batch holds the group's ``flock``
(store/durable.py: kernel-queued, unlike SQLite's sleeping busy handler) and one ``BEGIN IMMEDIATE``
transaction, so every batch holds every device.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.customs.state.base import SCHEMA_VERSION, GroupState, StateError
from agent.customs.store.durable import StoreLock


class SqliteState(GroupState):
    retryable = (OSError, sqlite3.OperationalError)

    def __init__(self, folder: Path) -> None:
        self.path = folder / "state.sqlite"
        self._lock = StoreLock(folder / "store.lock")  # one batch at a time across the --share group
        try:
            with self._lock.held():  # workers starting together: one sets WAL mode and the schema at a time
                self._db: sqlite3.Connection | None = self._open()
        except BaseException:
            self._lock.close()
            raise

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        old = db.execute("PRAGMA user_version").fetchone()[0]
        if old < SCHEMA_VERSION and db.execute("SELECT 1 FROM sqlite_master WHERE name='records'").fetchone():
            db.close()
            raise StateError(f"{self.path} was written by an older ingest (schema {old}); ingest into a new --out")
        if old > SCHEMA_VERSION:
            db.close()
            raise StateError(f"{self.path} was written by a newer ingest (schema {old}); upgrade evidence-officer")
        for stmt in self.statements("INTEGER", " WITHOUT ROWID"):
            db.execute(stmt)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StateError(f"{self.path}: the group state is closed")
        return self._db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.db.execute(sql, tuple(args))

    @contextmanager
    def batch(self, devices: Sequence[str]) -> Iterator[set[str]]:
        with self._lock.held():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield set(devices)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._lock.close()

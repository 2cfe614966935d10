"""The group state in the PostgreSQL index: workers on any number of machines, in parallel per device.

The bookkeeping tables live in the schema ``ingest`` of the index database and are written on the
index's own connection, so a batch's state rows and index rows commit together (``covers_index``).
Instead of one group-wide lock, a batch takes a transaction-scoped advisory lock per device
(``pg_try_advisory_xact_lock``): devices another worker holds are handed back as busy and their
messages wait for the next batch; only when every device of a batch is busy does the worker *wait*,
for one device, holding none (so no two workers ever wait on each other), and at most ``wait_s``.
A batch runs in pipeline mode (see ``batch``). Workers then share only OUT — the evidence folders,
partial media and quarantine — which may be a shared mount.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agent.customs.state.base import SCHEMA_VERSION, GroupState, StateError

if TYPE_CHECKING:
    from agent.customs.store.postgres import PostgresIndex

log = logging.getLogger(__name__)

LOCK_CLASS = 0x45564447  # "EVDG": first key of the per-device advisory locks (the second is the device's hash)


def device_key(device: str) -> int:
    """A device's 32-bit lock key (a collision only makes two devices take turns)."""
    return int.from_bytes(hashlib.blake2b(device.encode(), digest_size=4).digest(), "big", signed=True)


class PostgresState(GroupState):
    covers_index = True

    def __init__(self, index: PostgresIndex) -> None:
        import psycopg

        self.index = index
        self.retryable = (OSError, psycopg.OperationalError, psycopg.errors.TransactionRollback,
                          psycopg.errors.LockNotAvailable)
        self.wait_s = 60.0  # longest wait for a busy device; then LockNotAvailable (retryable, retried later)
        self.waits = 0  # batches that found every device busy and waited for one
        self._pipe: Any = None  # the batch's psycopg pipeline
        with index.transaction():
            index.lock_migrations()
            self._cur("CREATE SCHEMA IF NOT EXISTS ingest")
            self._cur("CREATE TABLE IF NOT EXISTS ingest.state_version (version INTEGER NOT NULL)")
            row = self._cur("SELECT MAX(version) FROM ingest.state_version").fetchone()
            if row[0] is not None and row[0] != SCHEMA_VERSION:
                mend = "upgrade evidence-officer" if row[0] > SCHEMA_VERSION else "use a new index database"
                raise StateError(f"the index's ingest state has schema {row[0]}, this software {SCHEMA_VERSION}; "
                                 f"{mend}")
            self._set_path()
            for stmt in self.statements("BIGINT", ""):
                self._cur(stmt.replace("CREATE TABLE IF NOT EXISTS ", "CREATE TABLE IF NOT EXISTS ingest."))
            if row[0] is None:
                self._cur("INSERT INTO ingest.state_version VALUES (%s)", (SCHEMA_VERSION,))

    def _set_path(self) -> None:
        # the index tables stay first: only the state tables are found in "ingest"
        self._cur("SELECT set_config('search_path', 'public, ingest', false)")

    def _cur(self, sql: str, args: Sequence[Any] = ()) -> Any:
        cur = self.index.connection().cursor()
        cur.execute(sql, tuple(args))
        return cur

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._cur(sql.replace("?", "%s"), args)

    @contextmanager
    def batch(self, devices: Sequence[str]) -> Iterator[set[str]]:
        if self.index.reconnect_if_lost():
            self._set_path()
            self.index.connection().commit()
        with self.index.transaction():
            held = self._lock(sorted(set(devices)))
            # pipeline mode: statements whose rows nobody reads (savepoints, counters, updates) travel with
            # the next one that is read, so a message costs a few round trips instead of one per statement
            with self.index.connection().pipeline() as pipe:
                self._pipe = pipe
                try:
                    yield held
                finally:
                    self._pipe = None

    def sync(self) -> None:
        if self._pipe is not None:
            self._pipe.sync()

    def _lock(self, devices: list[str]) -> set[str]:
        keys = [device_key(d) for d in devices]
        held = self._try(devices, keys)
        if not held and devices:  # every device busy: wait for one, holding nothing
            self.waits += 1
            # bounded: a worker hung mid-batch (alive, holding its devices) costs the others a retry, not a stall
            self._cur("SELECT set_config('lock_timeout', %s, true)", (f"{int(self.wait_s * 1000)}ms",))
            self._cur("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, keys[0]))
            held = {devices[0]} | self._try(devices[1:], keys[1:])
        return held

    def _try(self, devices: list[str], keys: list[int]) -> set[str]:
        if not devices:
            return set()
        rows = self._cur("SELECT k, pg_try_advisory_xact_lock(%s, k) FROM unnest(%s::int[]) AS k",
                         (LOCK_CLASS, keys)).fetchall()
        got = {k for k, ok in rows if ok}
        return {d for d, k in zip(devices, keys, strict=True) if k in got}

    @contextmanager
    def reading(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.index.connection().rollback()  # never hold a snapshot between reports

    def close(self) -> None:
        """The connection is the index's: closing the index closes it."""

"""The bookkeeping of an ingest group: one backend per file (``sqlite.py``, ``postgres.py``) behind this class.

The bookkeeping is what the workers of one ``--share`` group must agree on: which records are stored
(and so which second record for a seq is a fork), the chain links checked so far, chunk sets of media
in reassembly, pinned certificates, counters and the quarantine budget. Every table is keyed by device.

What a backend must do:

* **Run the state SQL** (:data:`SCHEMA` and the ingest's statements, written once with ``?`` placeholders
  and portable spellings) through :meth:`GroupState.execute`, returning a DB-API cursor.
* **Give a batch its devices alone.** :meth:`GroupState.batch` opens one transaction and returns the
  devices whose rows *and files* (sidecars, partial media, pinned certificates under OUT) this worker
  may decide until it commits. Another worker asking for the same device either waits or is told the
  device is busy (the ingest then keeps those messages for its next batch). A backend never waits while
  holding a device, so workers cannot deadlock; it always grants at least one device of a batch.
* **Commit once, after the files.** The caller fsyncs its files inside the batch; the backend commits
  when the block ends and rolls back on an exception. Nothing is acknowledged before that commit.
* **Say what may pass** (:attr:`GroupState.retryable`): I/O errors, a busy or lost database. Such a
  message is kept unacknowledged and retried; every other failure is a refusal.
* **May pipeline.** A backend may send statements without waiting for each (PostgreSQL's pipeline
  mode): a statement whose rows are fetched waits, :meth:`GroupState.sync` waits for all, and the
  ingest syncs at the end of every message so that an error belongs to the message that caused it.
* :attr:`GroupState.covers_index` is True when the customs index is written in the same transaction
  (one commit for both); otherwise the ingest nests the index's own transaction inside the batch.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

SCHEMA_VERSION = 2  # the state schema (chain links included); a SQLite file keeps it in user_version
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (device TEXT NOT NULL, item TEXT NOT NULL, site TEXT NOT NULL,
  seq {big} NOT NULL, kind TEXT NOT NULL, media_name TEXT, media_sha256 TEXT, media_done INTEGER NOT NULL,
  at_ns {big} NOT NULL, PRIMARY KEY (device, item), UNIQUE (device, seq)){norowid};
CREATE TABLE IF NOT EXISTS forks (device TEXT NOT NULL, seq {big} NOT NULL, item TEXT NOT NULL, path TEXT,
  at_ns {big} NOT NULL, PRIMARY KEY (device, item)){norowid};
CREATE TABLE IF NOT EXISTS partials (device TEXT NOT NULL, item TEXT NOT NULL, total INTEGER NOT NULL,
  size {big} NOT NULL, sha256 TEXT NOT NULL, started_ns {big} NOT NULL,
  PRIMARY KEY (device, item, total)){norowid};
CREATE TABLE IF NOT EXISTS chunks (device TEXT NOT NULL, item TEXT NOT NULL, total INTEGER NOT NULL,
  idx INTEGER NOT NULL, PRIMARY KEY (device, item, total, idx)){norowid};
CREATE TABLE IF NOT EXISTS media (device TEXT NOT NULL, item TEXT NOT NULL, sha256 TEXT NOT NULL,
  path TEXT NOT NULL, PRIMARY KEY (device, item)){norowid};
CREATE TABLE IF NOT EXISTS counters (device TEXT NOT NULL, name TEXT NOT NULL, n {big} NOT NULL,
  PRIMARY KEY (device, name)){norowid};
CREATE TABLE IF NOT EXISTS quarantine_use (device TEXT PRIMARY KEY, files {big} NOT NULL,
  bytes {big} NOT NULL){norowid};
CREATE TABLE IF NOT EXISTS chain_links (device TEXT NOT NULL, seq {big} NOT NULL, item TEXT NOT NULL,
  prev TEXT NOT NULL, kind TEXT NOT NULL, boot TEXT, mono_us {big}, PRIMARY KEY (device, seq, item)){norowid}
"""


class StateError(Exception):
    """The group state cannot be used (older or newer schema, unreachable); the message says why."""


class GroupState(abc.ABC):
    """One worker's handle on its group's bookkeeping."""

    retryable: tuple[type[BaseException], ...] = (OSError,)
    covers_index: bool = False

    @abc.abstractmethod
    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders) in the current transaction; a DB-API cursor."""

    @abc.abstractmethod
    def batch(self, devices: Sequence[str]) -> AbstractContextManager[set[str]]:
        """One transaction; yields the devices of ``devices`` this worker holds until it ends (never none)."""

    def sync(self) -> None:  # noqa: B027 - a backend that does not pipeline has nothing to wait for
        """Wait until every statement sent so far has run (a pipelining backend); errors surface here."""

    def reading(self) -> AbstractContextManager[None]:
        """A read outside any batch (the report): a backend ends its snapshot afterwards."""
        return nullcontext()

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection and any lock; idempotent."""

    @staticmethod
    def statements(big: str, norowid: str) -> Iterator[str]:
        """The schema's statements in a dialect."""
        for stmt in SCHEMA.format(big=big, norowid=norowid).split(";"):
            if stmt.strip():
                yield stmt

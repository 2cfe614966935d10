"""The customs index interface: one backend per file (``sqlite.py``, ``postgres.py``) behind this class.

What a backend must do:

* **Durable before acknowledged.** Every write happens inside :meth:`Index.transaction`; the ingest
  commits it (after its files are fsynced) before it acknowledges any message of the batch.
* **Idempotent and write-once.** Putting the same record twice is a no-op (``put_item`` returns False);
  a different record for a stored (device, seq) is never written over — it is kept as a ``fork``
  finding. Redelivery after a crash therefore changes nothing.
* **Shared by any number of workers.** No state lives in the process: chain neighbours, media
  completion and counters are read from the index inside the transaction, so ``--share`` workers on
  many machines see each other's work. Concurrent inserts of one item by two workers must not fail
  the batch (``ON CONFLICT DO NOTHING``).
* **Migrations.** :meth:`Index.migrate` brings the schema to :data:`SCHEMA_VERSION`, safely when several
  workers start at once, and refuses a database newer than the code.
* **Queries for the console** (:meth:`search`, :meth:`count`, :meth:`get_item`, :meth:`devices`,
  :meth:`findings`): by device, site, time
  range, kind, event type and case, newest first, keyset-paginated.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager

from agent.customs.store.chain import Link
from agent.customs.store.model import DeviceRow, Finding, ItemRow, Query

SCHEMA_VERSION = 2


class IndexError_(Exception):
    """The index cannot be used (unreachable, newer schema, bad URL); the message says which and why."""


class Index(abc.ABC):
    """A customs-side index of evidence records, devices, events, live sessions, anchoring and findings."""

    @abc.abstractmethod
    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version now in place."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """One atomic unit of work (a batch of messages): commit on success, roll back on an exception."""

    @abc.abstractmethod
    def put_item(self, row: ItemRow, link: Link) -> tuple[bool, list[str]]:
        """Store a verified record: (new?, chain problems against its stored neighbours)."""

    @abc.abstractmethod
    def media_stored(self, device: str, item: str, blob: str) -> None:
        """The item's media is durable under ``blob`` (a path or object key)."""

    @abc.abstractmethod
    def add_finding(self, finding: Finding) -> None:
        """Keep a problem found in stored evidence."""

    @abc.abstractmethod
    def search(self, query: Query) -> list[ItemRow]:
        """Items matching ``query``, newest capture first."""

    @abc.abstractmethod
    def count(self, query: Query, cap: int | None = None) -> int:
        """How many items match ``query`` (its ``after`` and ``limit`` ignored), at most ``cap`` when given."""

    @abc.abstractmethod
    def get_item(self, device: str, item: str) -> ItemRow | None:
        """One stored record by device and record hash, or None."""

    @abc.abstractmethod
    def devices(self, site: str | None = None) -> list[DeviceRow]:
        """Every device with its record count, newest sequence number and time span."""

    @abc.abstractmethod
    def findings(self, device: str | None = None) -> list[Finding]:
        """Problems kept for a device (or all)."""

    @abc.abstractmethod
    def schema_version(self) -> int | None:
        """The newest applied migration, or None when the index was never migrated (read-only check)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; idempotent."""

    def iter_items(self, query: Query) -> Iterator[ItemRow]:
        """All matching items, page by page (keyset pagination: stable while ingest keeps writing)."""
        q = query
        while True:
            page = self.search(q)
            yield from page
            if len(page) < q.limit:
                return
            last = page[-1]
            q = Query(**{**q.__dict__, "after": (last.captured_us, last.item)})

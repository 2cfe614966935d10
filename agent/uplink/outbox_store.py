"""The outbox's SQLite store (WAL): what is queued, which chunks the broker acknowledged, what was delivered.

paho's session lives in memory (DESIGN-NOTES §4), so every sealed record and its media is written here
first; an entry leaves only once the broker acknowledged all of it, and then its item is remembered as
``delivered`` (the vault's quota policy evicts media only after that). Refused entries stay as
``rejected`` with their reason. Only the dispatcher writes; status reads may come from any thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.model import SealedItem
from agent.uplink.backlog import sidecar_props
from agent.wire.chunks import MediaRef

log = logging.getLogger(__name__)

PRIORITY = {"record": 0, "alert": 0, "receipt": 1, "media": 2}
SIDECAR_TYPE = "application/vnd.evidence.sidecar"
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT, priority INTEGER NOT NULL, channel TEXT NOT NULL,
  item TEXT NOT NULL, seq INTEGER, kind TEXT, payload BLOB, path TEXT, size INTEGER NOT NULL,
  props TEXT NOT NULL, content_type TEXT, chunk_size INTEGER, total INTEGER,
  state TEXT NOT NULL DEFAULT 'pending', reason TEXT, created_ns INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_order ON entries(state, priority, id);
CREATE TABLE IF NOT EXISTS acked (entry INTEGER NOT NULL, idx INTEGER NOT NULL,
  PRIMARY KEY (entry, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (item TEXT NOT NULL, channel TEXT NOT NULL, seq INTEGER,
  at_ns INTEGER NOT NULL, PRIMARY KEY (item, channel)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = "id, channel, item, seq, kind, payload, path, size, props, content_type, chunk_size, total, state"


@dataclass(frozen=True)
class Entry:
    """One queued message: a sidecar, a small message, or a media file (by path) to send in chunks."""

    id: int
    channel: str
    item: str
    seq: int | None
    kind: str | None
    payload: bytes | None
    path: str | None
    size: int
    props: tuple[tuple[str, str], ...]
    content_type: str | None
    chunk_size: int | None  # set once the entry is cut into chunks (media always; records over the limit)
    total: int | None
    state: str = "pending"

    @property
    def chunked(self) -> bool:
        return self.channel == "media" or self.total is not None


@dataclass(frozen=True)
class Counts:
    pending: int
    pending_bytes: int
    rejected: int
    oldest_ns: int | None


def _entry(row: tuple[Any, ...]) -> Entry:
    (id_, channel, item, seq, kind, payload, path, size, props, ctype, chunk_size, total, state) = row
    return Entry(id=id_, channel=channel, item=item, seq=seq, kind=kind, payload=payload, path=path, size=size,
                 props=tuple((str(k), str(v)) for k, v in json.loads(props)), content_type=ctype,
                 chunk_size=chunk_size, total=total, state=state)


class OutboxStore:
    """The tables behind the outbox; every write of the dispatcher goes through one :meth:`transaction`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self, *, durable: bool) -> Iterator[None]:
        """``durable``: an enqueue must survive power loss; losing an ack only means a resend."""
        self._db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
        self._db.execute("BEGIN IMMEDIATE" if durable else "BEGIN")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # a failed COMMIT may already have ended it
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error as exc:  # the caller's error is the one that matters
                    log.error("outbox: rollback failed: %s", exc)
            raise

    # -- enqueue ---------------------------------------------------------------------------------
    def high_seq(self) -> int:
        """The newest sealed seq already queued (catch-up and the listener may both see an item)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='high_seq'").fetchone()
        return -1 if row is None else int(row[0])

    def add(self, prio: int, channel: str, item: str, seq: int | None, kind: str | None, payload: bytes | None,
            path: str | None, size: int, props: list[tuple[str, str]], ctype: str | None) -> None:
        self._db.execute(
            "INSERT INTO entries (priority, channel, item, seq, kind, payload, path, size, props, content_type,"
            " created_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (prio, channel, item, seq, kind, payload, path, size, json.dumps(props), ctype, time.time_ns()))

    def add_item(self, item: SealedItem, alert_kinds: set[str]) -> None:
        """The sidecar (record, and alert for alerting kinds) and the media file of one sealed item."""
        if item.seq <= self.high_seq():
            return
        try:
            sidecar = Path(item.record_path).read_bytes()
        except OSError as exc:
            log.error("outbox: sidecar of seq %d unreadable: %s", item.seq, exc)
            return
        props = sidecar_props(item)
        for channel in ("record", "alert") if item.kind in alert_kinds else ("record",):
            self.add(PRIORITY[channel], channel, item.record_hash, item.seq, item.kind, sidecar, None,
                     len(sidecar), props, SIDECAR_TYPE)
        media = item.record.get("media") or None
        if media and item.media_path:
            ref = MediaRef(item.record_hash, item.seq, item.kind, str(media["name"]), str(media["sha256"]),
                           int(media["size"]), str(media.get("type") or "application/octet-stream"))
            self.add(PRIORITY["media"], "media", item.record_hash, item.seq, item.kind, None,
                     item.media_path, ref.size, [("ref", json.dumps(ref.__dict__))], ref.content_type)
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('high_seq', ?)", (str(item.seq),))

    def retry_rejected(self) -> None:
        self._db.execute("UPDATE entries SET state='pending', reason=NULL WHERE state='rejected'")

    # -- reads -----------------------------------------------------------------------------------
    def pending(self, limit: int = 64) -> list[Entry]:
        """The next entries to send: records and alerts before receipts before media, oldest first."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE state='pending' "
                                "ORDER BY priority, id LIMIT ?", (limit,)).fetchall()
        return [_entry(r) for r in rows]

    def get(self, entry_id: int) -> Entry | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE id=?", (entry_id,)).fetchone()
        return None if row is None else _entry(row)

    def acked(self, entry_id: int) -> set[int]:
        return {r[0] for r in self._db.execute("SELECT idx FROM acked WHERE entry=?", (entry_id,))}

    def counts(self) -> Counts:
        pending, pbytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size),0) FROM entries WHERE state='pending'").fetchone()
        rejected = self._db.execute("SELECT COUNT(*) FROM entries WHERE state='rejected'").fetchone()[0]
        oldest = self._db.execute("SELECT MIN(created_ns) FROM entries WHERE state='pending'").fetchone()[0]
        return Counts(int(pending), int(pbytes), int(rejected), oldest)

    def rejected(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT id, channel, item, seq, kind, reason FROM entries "
                                "WHERE state='rejected' ORDER BY id").fetchall()
        return [dict(zip(("id", "channel", "item", "seq", "kind", "reason"), r, strict=True)) for r in rows]

    def is_delivered(self, item: str, channel: str) -> bool:
        row = self._db.execute("SELECT 1 FROM delivered WHERE item=? AND channel=?", (item, channel)).fetchone()
        return row is not None

    # -- settling --------------------------------------------------------------------------------
    def cut(self, entry_id: int, chunk_size: int, total: int | None) -> None:
        """(Re-)cut an entry into chunks of ``chunk_size``; acknowledgements of the old cut no longer count."""
        self._db.execute("UPDATE entries SET chunk_size=?, total=? WHERE id=?", (chunk_size, total, entry_id))
        self._db.execute("DELETE FROM acked WHERE entry=?", (entry_id,))

    def ack_chunk(self, entry_id: int, idx: int) -> None:
        self._db.execute("INSERT OR IGNORE INTO acked VALUES (?,?)", (entry_id, idx))

    def reject(self, entry_id: int, reason: str) -> None:
        self._db.execute("UPDATE entries SET state='rejected', reason=? WHERE id=?", (reason, entry_id))

    def deliver(self, entry: Entry) -> None:
        """All of it acknowledged: the entry leaves, its item is remembered as delivered on its channel."""
        self._db.execute("DELETE FROM entries WHERE id=?", (entry.id,))
        self._db.execute("DELETE FROM acked WHERE entry=?", (entry.id,))
        self._db.execute("INSERT OR REPLACE INTO delivered VALUES (?,?,?,?)",
                         (entry.item, entry.channel, entry.seq, time.time_ns()))

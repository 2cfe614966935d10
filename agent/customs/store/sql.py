"""What the SQLite and PostgreSQL indexes share: the tables, the write path and the console queries.

The SQL is written once with ``?`` placeholders and ``{big}``/``{json}``/``{real}``/``{max}`` for the few
words the two dialects spell differently; each backend supplies a DB-API connection and its dialect.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agent.customs.store.base import SCHEMA_VERSION, Index, IndexError_
from agent.customs.store.chain import Link, problems
from agent.customs.store.model import DeviceRow, Finding, ItemRow, Query


@dataclass(frozen=True)
class Dialect:
    big: str  # 64-bit integer
    json: str
    real: str
    serial: str  # auto-numbered primary key
    max: str  # two-argument maximum
    param: str  # the driver's placeholder


MIGRATIONS: list[tuple[int, str]] = [(1, """
CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, site TEXT NOT NULL, records {big} NOT NULL,
  max_seq {big} NOT NULL, first_us {big} NOT NULL, last_us {big} NOT NULL);
CREATE TABLE IF NOT EXISTS items (device TEXT NOT NULL, item TEXT NOT NULL, site TEXT NOT NULL, seq {big} NOT NULL,
  kind TEXT NOT NULL, captured_us {big} NOT NULL, sealed_us {big}, media_name TEXT, media_sha256 TEXT,
  media_size {big}, media_done INTEGER NOT NULL, media_blob TEXT, event_type TEXT, case_id TEXT, lat {real},
  lon {real}, prev TEXT NOT NULL, boot TEXT, mono_us {big}, body TEXT NOT NULL, stored_ns {big} NOT NULL,
  PRIMARY KEY (device, item), UNIQUE (device, seq));
CREATE INDEX IF NOT EXISTS items_time ON items (captured_us, item);
CREATE INDEX IF NOT EXISTS items_site_time ON items (site, captured_us);
CREATE INDEX IF NOT EXISTS items_kind_time ON items (kind, captured_us);
CREATE INDEX IF NOT EXISTS items_case ON items (case_id) WHERE case_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (device TEXT NOT NULL, seq {big} NOT NULL, item TEXT NOT NULL, type TEXT,
  at_us {big} NOT NULL, detail {json}, PRIMARY KEY (device, seq));
CREATE INDEX IF NOT EXISTS events_type_time ON events (type, at_us);
CREATE TABLE IF NOT EXISTS live_sessions (device TEXT NOT NULL, seq {big} NOT NULL, item TEXT NOT NULL,
  session TEXT, officer TEXT, started_us {big} NOT NULL, ended_us {big}, PRIMARY KEY (device, seq));
CREATE TABLE IF NOT EXISTS inspections (id TEXT PRIMARY KEY, device TEXT NOT NULL, case_id TEXT, officer TEXT,
  opened_us {big} NOT NULL, closed_us {big}, report {json});
CREATE TABLE IF NOT EXISTS anchoring (device TEXT NOT NULL, seq {big} NOT NULL, item TEXT NOT NULL,
  kind TEXT NOT NULL, at_us {big} NOT NULL, detail {json}, PRIMARY KEY (device, seq));
CREATE TABLE IF NOT EXISTS findings (id {serial}, device TEXT NOT NULL, seq {big}, item TEXT, kind TEXT NOT NULL,
  detail TEXT NOT NULL, at_ns {big} NOT NULL);
CREATE INDEX IF NOT EXISTS findings_device ON findings (device);
"""), (2, """
CREATE INDEX IF NOT EXISTS items_event_time ON items (event_type, captured_us) WHERE event_type IS NOT NULL;
""")]  # 2: the console's event-type filter and its count no longer scan every item

ITEM_COLS = ("device, site, seq, item, kind, captured_us, sealed_us, media_name, media_sha256, media_size, "
             "event_type, case_id, lat, lon, body, media_done")


class SqlIndex(Index):
    """The shared implementation; subclasses open the connection and may wrap ``transaction``."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.conn = conn
        self.d = dialect

    # -- plumbing ---------------------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        return text.replace("?", self.d.param)

    def _x(self, text: str, args: tuple[Any, ...] = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(self._sql(text), args)
        return cur

    def _ddl(self, version: int) -> str:
        return next(s for v, s in MIGRATIONS if v == version).format(
            big=self.d.big, json=self.d.json, real=self.d.real, serial=self.d.serial)

    def _lock_migrations(self) -> None:
        """Serialise concurrent migrators (a backend with a database-wide lock overrides this)."""

    def migrate(self) -> int:
        with self.transaction():
            self._lock_migrations()
            self._x(f"CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                    f"applied_ns {self.d.big} NOT NULL)")
            have = {int(r[0]) for r in self._x("SELECT version FROM schema_migrations").fetchall()}
            if have and max(have) > SCHEMA_VERSION:
                raise IndexError_(f"index schema version {max(have)} is newer than this software "
                                  f"({SCHEMA_VERSION}); upgrade evidence-officer")
            for version, _ in MIGRATIONS:
                if version in have:
                    continue
                for stmt in self._ddl(version).split(";"):
                    if stmt.strip():
                        self._x(stmt)
                self._x("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time_ns()))
        return SCHEMA_VERSION

    def schema_version(self) -> int | None:
        try:
            row = self._x("SELECT MAX(version) FROM schema_migrations").fetchone()
        except Exception as exc:  # either driver's error type; only a missing table means "never migrated"
            self.conn.rollback()
            if "schema_migrations" in str(exc):
                return None
            raise IndexError_(f"not a readable index: {str(exc).strip().splitlines()[0][:200]}") from exc
        self.conn.rollback()
        return None if row is None or row[0] is None else int(row[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            yield
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    # -- writing ----------------------------------------------------------------------------------
    def _neighbours(self, device: str, seq: int) -> dict[int, Link]:
        """The stored seq-1 and seq+1 of a device, in one query."""
        rows = self._x("SELECT seq, item, prev, kind, boot, mono_us FROM items WHERE device=? AND seq IN (?, ?)",
                       (device, seq - 1, seq + 1)).fetchall()
        return {int(r[0]): Link(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def put_item(self, row: ItemRow, link: Link) -> tuple[bool, list[str]]:
        cur = self._x(f"INSERT INTO items ({ITEM_COLS}, prev, boot, mono_us, stored_ns) VALUES "
                      f"({', '.join('?' * 20)}) ON CONFLICT DO NOTHING RETURNING 1",
                      (row.device, row.site, row.seq, row.item, row.kind, row.captured_us, row.sealed_us,
                       row.media_name, row.media_sha256, row.media_size, row.event_type, row.case_id, row.lat,
                       row.lon, row.body, int(row.media_done), link.prev, link.boot, link.mono_us, time.time_ns()))
        # the neighbours are asked before the insert's answer is read: one round trip on a pipelined connection
        near_cur = self._x("SELECT seq, item, prev, kind, boot, mono_us FROM items WHERE device=? AND seq IN (?, ?)",
                           (row.device, row.seq - 1, row.seq + 1))
        if not cur.fetchall():
            near_cur.fetchall()
            same = self._x("SELECT 1 FROM items WHERE device=? AND item=?", (row.device, row.item)).fetchone()
            if same is not None:
                return False, []
            detail = f"a second, different record for seq {row.seq} (item {row.item[:16]}…) kept out"
            self.add_finding(Finding(row.device, row.seq, row.item, "fork", detail))
            return False, [detail]
        near = {int(r[0]): Link(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in near_cur.fetchall()}
        found = problems(link, near.get(row.seq - 1), near.get(row.seq + 1))
        for problem in found:
            self.add_finding(Finding(row.device, row.seq, row.item, "chain", problem))
        self._x(f"INSERT INTO devices VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET "
                f"records = devices.records + 1, max_seq = {self.d.max}(devices.max_seq, excluded.max_seq), "
                f"first_us = -{self.d.max}(-devices.first_us, -excluded.first_us), "
                f"last_us = {self.d.max}(devices.last_us, excluded.last_us)",
                (row.device, row.site, row.seq, row.captured_us, row.captured_us))
        self._side_tables(row)
        return True, found

    def _side_tables(self, row: ItemRow) -> None:
        extra = json.loads(row.body).get("extra") or {}
        if row.kind in ("event", "tamper", "alert", "selftest"):
            self._x("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (row.device, row.seq, row.item, row.event_type or row.kind, row.captured_us,
                     json.dumps(extra)))
        elif row.kind == "live":
            self._x("INSERT INTO live_sessions VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (row.device, row.seq, row.item, _s(extra.get("session")), _s(extra.get("officer")),
                     row.captured_us, None))
        elif row.kind in ("checkpoint", "receipt"):
            self._x("INSERT INTO anchoring VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (row.device, row.seq, row.item, row.kind, row.captured_us, json.dumps(extra)))

    def media_stored(self, device: str, item: str, blob: str) -> None:
        self._x("UPDATE items SET media_done=1, media_blob=? WHERE device=? AND item=?", (blob, device, item))

    def add_finding(self, finding: Finding) -> None:
        self._x("INSERT INTO findings (device, seq, item, kind, detail, at_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (finding.device, finding.seq, finding.item, finding.kind, finding.detail, time.time_ns()))

    # -- queries ----------------------------------------------------------------------------------
    @staticmethod
    def _where(query: Query) -> tuple[str, list[Any]]:
        """The filter of ``query`` as a WHERE clause with placeholders: values travel only as parameters."""
        where, args = ["1=1"], list[Any]()
        for col, val in (("device", query.device), ("site", query.site), ("kind", query.kind),
                         ("event_type", query.event_type), ("case_id", query.case_id)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if query.since_us is not None:
            where.append("captured_us >= ?")
            args.append(query.since_us)
        if query.until_us is not None:
            where.append("captured_us <= ?")
            args.append(query.until_us)
        return " AND ".join(where), args

    def search(self, query: Query) -> list[ItemRow]:
        where, args = self._where(query)
        if query.after is not None:
            where += " AND (captured_us < ? OR (captured_us = ? AND item < ?))"
            args += [query.after[0], query.after[0], query.after[1]]
        rows = self._x(f"SELECT {ITEM_COLS} FROM items WHERE {where} "
                       f"ORDER BY captured_us DESC, item DESC LIMIT ?", (*args, query.limit)).fetchall()
        self.conn.rollback()  # end the read transaction: a long-lived reader must not hold a snapshot
        return [_item(r) for r in rows]

    def count(self, query: Query, cap: int | None = None) -> int:
        where, args = self._where(query)
        if cap is None:
            row = self._x(f"SELECT COUNT(*) FROM items WHERE {where}", tuple(args)).fetchone()
        else:  # stop counting at the cap: a broad filter over millions of rows stays cheap
            row = self._x(f"SELECT COUNT(*) FROM (SELECT 1 FROM items WHERE {where} LIMIT ?) AS capped",
                          (*args, cap)).fetchone()
        self.conn.rollback()
        return int(row[0])

    def get_item(self, device: str, item: str) -> ItemRow | None:
        row = self._x(f"SELECT {ITEM_COLS} FROM items WHERE device = ? AND item = ?", (device, item)).fetchone()
        self.conn.rollback()
        return None if row is None else _item(row)

    def devices(self, site: str | None = None) -> list[DeviceRow]:
        q, args = "SELECT device, site, records, max_seq, first_us, last_us FROM devices", tuple[str, ...]()
        if site is not None:
            q, args = q + " WHERE site = ?", (site,)
        rows = self._x(q + " ORDER BY device", args).fetchall()
        self.conn.rollback()
        return [DeviceRow(*r) for r in rows]

    def findings(self, device: str | None = None) -> list[Finding]:
        q, args = "SELECT device, seq, item, kind, detail FROM findings", tuple[str, ...]()
        if device is not None:
            q, args = q + " WHERE device = ?", (device,)
        rows = self._x(q + " ORDER BY id", args).fetchall()
        self.conn.rollback()
        return [Finding(*r) for r in rows]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _item(r: Any) -> ItemRow:
    return ItemRow(device=r[0], site=r[1], seq=r[2], item=r[3], kind=r[4], captured_us=r[5], sealed_us=r[6],
                   media_name=r[7], media_sha256=r[8], media_size=r[9], event_type=r[10], case_id=r[11],
                   lat=r[12], lon=r[13], body=r[14], media_done=bool(r[15]))


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None

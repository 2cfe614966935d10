"""The device's replay store: nonces of accepted officer commands, in SQLite so a restart forgets none.

A nonce is held until its command's expiry (plus the tolerated skew) has passed on **both** clocks:

* the monotonic clock, so a wall clock stepped forward cannot prune a nonce early, and
* the wall clock, so a wall clock stepped back (an NTP or GPS correction, a dead RTC battery) into the
  command's lifetime finds the nonce still held: the verifier checks expiry by the wall clock, and as long as
  the command looks fresh there, its nonce stays.

A wall clock can still be stepped back *after* a nonce went, so the store also keeps a floor: the latest
expiry of any nonce it pruned (persisted). A command expiring at or before the floor is refused as a possible
replay whatever the clocks say now. Pruned rows expired more than the skew before the wall clock at pruning,
so while that clock only moves forward the floor refuses nothing the expiry check would not refuse anyway.

Rows from an earlier process are re-based on start to a full command lifetime from now (monotonic readings
only compare within one process). The store stays bounded by rate x (max_ttl + skew) while the clocks agree.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path

from agent.core.errors import CommandError


class ReplayCache:
    """``claim`` records a nonce once; a second claim (a replay) returns False, also after a restart."""

    def __init__(self, path: Path, skew_ms: int = 30_000, max_ttl_ms: int = 300_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._skew_ms = skew_ms
        self._db: sqlite3.Connection | None = sqlite3.connect(str(path), check_same_thread=False,
                                                              isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
                         " expires_ms INTEGER NOT NULL)")
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(nonces)")}
        for col in ("epoch", "keep_mono_ns"):
            if col not in cols:
                self._db.execute(f"ALTER TABLE nonces ADD COLUMN {col}")
        self._db.execute("CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY CHECK (id = 1),"
                         " expires_ms INTEGER NOT NULL)")
        self._db.execute("INSERT OR IGNORE INTO floor VALUES (1, 0)")
        self._epoch = secrets.token_hex(8)
        rebase = time.monotonic_ns() + (max_ttl_ms + 2 * skew_ms) * 1_000_000
        self._db.execute("UPDATE nonces SET epoch=?, keep_mono_ns=?", (self._epoch, rebase))
        self._inserts = 0

    def claim(self, nonce: str, key_id: str, expires_ms: int, now_ms: int, mono_ns: int | None = None) -> bool:
        """Record ``nonce`` (``now_ms``: the wall clock the verifier used); False if it was accepted before."""
        mono = time.monotonic_ns() if mono_ns is None else mono_ns
        keep = mono + (max(0, expires_ms - now_ms) + self._skew_ms) * 1_000_000
        with self._lock:
            if self._db is None:
                raise CommandError("replay cache is closed")
            if expires_ms <= self.floor_ms:
                return False  # its nonce may have been pruned: a replay cannot be ruled out
            try:
                self._db.execute("INSERT INTO nonces VALUES (?, ?, ?, ?, ?)",
                                 (nonce, key_id, expires_ms, self._epoch, keep))
            except sqlite3.IntegrityError:
                return False
            self._inserts += 1
            if self._inserts % 256 == 0:
                self._prune(mono, now_ms)
            return True

    def prune(self, mono_ns: int | None = None, wall_ms: int | None = None) -> None:
        """Drop the nonces whose command has expired on both clocks."""
        with self._lock:
            self._prune(time.monotonic_ns() if mono_ns is None else mono_ns,
                        time.time_ns() // 1_000_000 if wall_ms is None else wall_ms)

    @property
    def floor_ms(self) -> int:
        """The latest expiry of a pruned nonce: commands expiring at or before it are refused."""
        assert self._db is not None
        return int(self._db.execute("SELECT expires_ms FROM floor WHERE id = 1").fetchone()[0])

    def _prune(self, mono_ns: int, wall_ms: int) -> None:
        if self._db is None:
            return
        where = "epoch=? AND keep_mono_ns < ? AND expires_ms + ? < ?"
        args = (self._epoch, mono_ns, self._skew_ms, wall_ms)
        with self._db:  # one transaction: the floor rises before the nonces go
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(f"UPDATE floor SET expires_ms = MAX(expires_ms, COALESCE("
                             f"(SELECT MAX(expires_ms) FROM nonces WHERE {where}), 0)) WHERE id = 1", args)
            self._db.execute(f"DELETE FROM nonces WHERE {where}", args)

    def __len__(self) -> int:
        with self._lock:
            assert self._db is not None
            return int(self._db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

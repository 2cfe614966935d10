"""The on-disk evidence vault: media files plus signed sidecars, and a rebuildable SQLite index.

Layout::

    vault/device/cert.pem            device certificate (leaf) as provisioned
    vault/device/chain.pem           issuing CA chain
    vault/items/000000/000000000042.still.jpg   media, named by sequence (names sort by sequence)
    vault/items/000000/000000000042.still.rec   signed sidecar record (see agent/signing/records.py)
    vault/staging/                   producers write media here before it is sealed
    vault/orphans/                   unsealed leftovers found after a crash (kept, listed in the restart record)
    vault/index.sqlite               cache only; `evidence-agent reindex` rebuilds it from the files

The files are the evidence; the index only makes look-ups cheap.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.core.errors import VaultError, VerificationError
from agent.core.fsutil import atomic_write, fsync_dir
from agent.signing.layout import ITEM_RE, SIDECAR_EXT, bucket_of, item_stem
from agent.signing.records import SignedRecord, parse_sidecar

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class IndexRow:
    seq: int
    kind: str
    record_hash: str
    wall_us: int
    record_path: str
    media_path: str | None
    media_size: int


class VaultFullError(VaultError):
    """Storing this item would exceed the vault quota; nothing sealed was deleted to make room."""


class Vault:
    """Owns the directory. Thread-safe; one writer (the Sealer) at a time."""

    def __init__(self, path: Path, *, quota_bytes: int | None = None, exclusive: bool = True) -> None:
        self.path = Path(path)
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        try:
            for sub in ("device", "items", "staging", "orphans"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VaultError(f"cannot create vault at {self.path}: {exc}") from exc
        self._lock_fd: int | None = self._take_lock() if exclusive else None
        self._db = self._open_index()
        self._catch_up()
        self._usage = int(self._db.execute("SELECT COALESCE(SUM(media_size), 0) FROM items").fetchone()[0])
        self._closed = False

    def _take_lock(self) -> int:
        """One writer per vault: a second agent process would fork the chain."""
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise VaultError(f"vault {self.path} is in use by another agent process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return fd

    # -- index -------------------------------------------------------------------------------
    def _open_index(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path / "index.sqlite", check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a cache: the files are fsynced, the index can be rebuilt
        db.execute(
            "CREATE TABLE IF NOT EXISTS items (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
            "record_hash TEXT NOT NULL, wall_us INTEGER NOT NULL, record_path TEXT NOT NULL, "
            "media_path TEXT, media_size INTEGER NOT NULL DEFAULT 0)"
        )
        return db

    def _index(self, rec: SignedRecord, record_path: Path, media_path: Path | None) -> None:
        r = rec.record
        media = r.get("media") or {}
        self._db.execute(
            "INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?,?)",
            (r["seq"], r["kind"], rec.hash, int(r["captured"]["wall_us"]),
             str(record_path.relative_to(self.path)),
             None if media_path is None else str(media_path.relative_to(self.path)),
             0 if media_path is None else int(media.get("size", 0))),
        )

    def _catch_up(self) -> None:
        """Index sidecars written after the last index update (crash between file and index)."""
        last = self._db.execute("SELECT MAX(seq) FROM items").fetchone()[0]
        start_bucket = bucket_of(last) if last is not None else ""
        for rec_path in self.iter_sidecar_paths(from_bucket=start_bucket):
            seq = int(rec_path.name[:12])
            if last is not None and seq <= last:
                continue
            self._index_file(rec_path)

    def _index_file(self, rec_path: Path) -> None:
        try:
            rec = parse_sidecar(rec_path.read_bytes(), str(rec_path))
        except (VerificationError, OSError):
            return  # verify reports it; the index only holds readable records
        media = rec.record.get("media")
        media_path = rec_path.parent / media["name"] if media else None
        if media_path is not None and not media_path.exists():
            media_path = None  # evicted by the quota (a sealed media_evicted record says so)
        self._index(rec, rec_path, media_path)

    def reindex(self) -> int:
        """Rebuild the index from the files alone; returns the number of records indexed."""
        with self._lock:
            self._db.execute("DELETE FROM items")
            for rec_path in self.iter_sidecar_paths():
                self._index_file(rec_path)
            self._usage = int(self._db.execute("SELECT COALESCE(SUM(media_size), 0) FROM items").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    # -- reading -----------------------------------------------------------------------------
    def iter_sidecar_paths(self, from_bucket: str = "") -> Iterator[Path]:
        items = self.path / "items"
        for bucket in sorted(p for p in items.iterdir() if p.is_dir() and p.name >= from_bucket):
            yield from sorted(p for p in bucket.iterdir() if p.name.endswith("." + SIDECAR_EXT))

    def last(self) -> tuple[int, str] | None:
        """(seq, record hash) of the newest sealed record, or None for an empty vault."""
        row = self._db.execute("SELECT seq, record_hash FROM items ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def rows(self, since_us: int | None = None, until_us: int | None = None) -> list[IndexRow]:
        q, args = "SELECT * FROM items WHERE 1=1", list[int]()
        if since_us is not None:
            q, args = q + " AND wall_us >= ?", [*args, since_us]
        if until_us is not None:
            q, args = q + " AND wall_us <= ?", [*args, until_us]
        return [IndexRow(*r) for r in self._db.execute(q + " ORDER BY seq", args).fetchall()]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def usage_bytes(self) -> int:
        """Media bytes held (kept as a running total: the seal path must not scan the index)."""
        return self._usage

    # -- writing -----------------------------------------------------------------------------
    def staging_path(self, ext: str) -> Path:
        """A fresh path on the vault's filesystem for a producer to write media into."""
        fd, name = tempfile.mkstemp(prefix="media-", suffix="." + ext, dir=self.path / "staging")
        os.close(fd)
        return Path(name)

    def check_room(self, nbytes: int) -> None:
        if self.quota_bytes is not None and self.usage_bytes() + nbytes > self.quota_bytes:
            raise VaultFullError(
                f"vault quota of {self.quota_bytes} bytes reached ({self.usage_bytes()} used); "
                "nothing sealed is deleted to make room")

    def store(self, rec: SignedRecord, media: Path | bytes | None, ext: str | None) -> tuple[Path, Path | None]:
        """Place media and sidecar durably; the sidecar goes last so a record never points at nothing."""
        r = rec.record
        stem = item_stem(int(r["seq"]), str(r["kind"]))
        bucket = self.path / "items" / bucket_of(int(r["seq"]))
        bucket.mkdir(exist_ok=True)
        media_path: Path | None = None
        record_path = bucket / f"{stem}.{SIDECAR_EXT}"
        with self._lock:
            try:
                if media is not None:
                    media_path = bucket / f"{stem}.{ext}"
                    if isinstance(media, bytes):
                        atomic_write(media_path, media, sync_dir=False)
                    else:
                        os.replace(media, media_path)  # producer fsynced it in staging
                atomic_write(record_path, rec.to_sidecar(), sync_dir=False)
                fsync_dir(bucket)
            except OSError as exc:
                if not record_path.exists():  # not sealed: never leave media without its record
                    self._unplace(media, media_path)
                    raise VaultError(f"cannot store seq {r['seq']} in {bucket}: {exc}") from exc
                log.warning("seq %s stored but the folder sync failed: %s", r["seq"], exc)
            try:
                self._index(rec, record_path, media_path)
            except sqlite3.Error as exc:  # the files are the evidence; the index catches up at the next open
                log.warning("index not updated for seq %s (%s); `evidence-agent reindex` rebuilds it", r["seq"], exc)
            self._usage += int((r.get("media") or {}).get("size", 0))
        return record_path, media_path

    @staticmethod
    def _unplace(media: Path | bytes | None, media_path: Path | None) -> None:
        """Undo placing media whose record could not be written: a producer's file goes back to staging."""
        if media_path is None or not media_path.exists():
            return
        with contextlib.suppress(OSError):
            if isinstance(media, Path):
                os.replace(media_path, media)
            else:
                media_path.unlink()

    def evict_media(self, rows: list[IndexRow]) -> int:
        """Delete media files (their sidecars stay); the caller has sealed a ``media_evicted`` record first."""
        freed = 0
        with self._lock:
            for row in rows:
                if row.media_path is None:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    (self.path / row.media_path).unlink()
                self._db.execute("UPDATE items SET media_path = NULL, media_size = 0 WHERE seq = ?", (row.seq,))
                self._usage -= row.media_size
                freed += row.media_size
        return freed

    def install_certificates(self, cert_pem: bytes, chain_pem: bytes) -> None:
        """Keep the device certificate in the vault so a verifier has it without the device.

        A vault belongs to one device key: a different certificate is refused once records exist
        (a re-keyed device starts a new vault, so no record is ever checked against the wrong key).
        """
        cert = self.path / "device" / "cert.pem"
        if cert.exists() and cert.read_bytes() != cert_pem and self.count() > 0:
            raise VaultError(f"{self.path} holds evidence signed with another device certificate; "
                             "use a new vault for a re-keyed device")
        for name, data in (("cert.pem", cert_pem), ("chain.pem", chain_pem)):
            target = self.path / "device" / name
            if not target.exists() or target.read_bytes() != data:
                atomic_write(target, data)

    def take_orphans(self) -> list[Path]:
        """Move unsealed leftovers to orphans/ (never deleted): staging files (a crash mid-segment), and media
        or temp files in items/ past the newest record (a crash between a media file and its sidecar)."""
        moved = []
        for p in sorted([*(self.path / "staging").iterdir(), *self._unsealed_in_items()]):
            if p.is_file() and p.stat().st_size > 0:
                target = self.path / "orphans" / p.name.lstrip(".")
                if target.exists():
                    target = target.with_name(f"{target.stem}-{os.getpid()}{target.suffix}")
                shutil.move(str(p), target)
                moved.append(target)
            elif p.is_file():
                p.unlink()
        if moved:
            fsync_dir(self.path / "orphans")
        return moved

    def _unsealed_in_items(self) -> list[Path]:
        last = self.last()
        newest = -1 if last is None else last[0]
        buckets = sorted(p for p in (self.path / "items").iterdir() if p.is_dir())
        out = []
        for bucket in buckets[-2:]:  # the next seq's media lands in the newest bucket (or a new one)
            for p in bucket.iterdir():
                m = ITEM_RE.match(p.name)
                unsealed = m is not None and int(m.group(1)) > newest and m.group(3) != SIDECAR_EXT
                if unsealed or (p.name.startswith(".") and p.name.endswith(".tmp")):  # or atomic_write's temp file
                    out.append(p)
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock

"""Media (and oversized records) arrive in chunks, in any order, possibly split across ``--share`` workers.

Each chunk is written into ``partial/<device>/<item>.<total>`` at its offset and counted in the state
database; when every chunk is there the whole file is checked against its SHA-256. The file stays where
it is until the ingest places it: if placing fails now (a blob store that is down), the savepoint brings
the chunk rows back and the retried last chunk finds the file whole. Partial sets are bounded per device
(``max_partial_sets``, oldest evicted) and expire after ``partial_max_age_s``; all values from the wire
are checked (agent.customs.guard) before they are used.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from agent.customs.guard import Limits, Refused, check_chunk
from agent.customs.ingest_state import count
from agent.customs.state.base import GroupState
from agent.customs.store.durable import SyncBatch
from agent.wire.chunks import Chunk, parse_chunk, props_dict
from agent.wire.mqtt import Inbound


class Reassembly:
    """Chunk sets of every device in the ingest's state database (the caller owns the transaction)."""

    def __init__(self, db: GroupState, root: Path, limits: Limits, sync: SyncBatch) -> None:
        self._db = db
        self.root = root
        self.limits = limits
        self.sync = sync  # the ingest's batch: chunk writes become durable with it
        self._dirs: set[str] = set()

    def parse(self, msg: Inbound, max_size: int) -> Chunk:
        """A chunk message, its geometry checked against the limits."""
        try:
            chunk = parse_chunk(props_dict(msg.user_props), msg.payload)
        except ValueError as exc:
            raise Refused(str(exc), reason="bad_chunk") from exc
        check_chunk(chunk, self.limits, max_size=max_size)
        return chunk

    def _dir(self, device: str) -> Path:
        return self.root / device

    def drop(self, device: str, item: str, total: int, reason: str) -> None:
        self._db.execute("DELETE FROM chunks WHERE device=? AND item=? AND total=?", (device, item, total))
        self._db.execute("DELETE FROM partials WHERE device=? AND item=? AND total=?", (device, item, total))
        (self._dir(device) / f"{item}.{total}").unlink(missing_ok=True)
        count(self._db, device, reason)

    def stale(self) -> dict[str, list[tuple[str, int]]]:
        """Every device's chunk sets older than ``partial_max_age_s``, in one query (once per batch)."""
        cutoff = time.time_ns() - int(self.limits.partial_max_age_s * 1e9)
        out: dict[str, list[tuple[str, int]]] = {}
        for device, item, total in self._db.execute("SELECT device, item, total FROM partials WHERE started_ns<?",
                                                    (cutoff,)).fetchall():
            out.setdefault(device, []).append((item, total))
        return out

    def expire(self, device: str, stale: dict[str, list[tuple[str, int]]]) -> None:
        """Drop this device's chunk sets found stale (:meth:`stale`)."""
        for item, total in stale.get(device, ()):
            self.drop(device, item, total, "partial_expired")

    def _file(self, device: str, chunk: Chunk) -> Path:
        folder = self._dir(device)
        if device not in self._dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._dirs.add(device)
        return folder / f"{chunk.item}.{chunk.total}"

    def _whole(self, device: str, chunk: Chunk) -> Path:
        """A file in one chunk (most stills) is complete on arrival: no chunk-set rows, checked from memory."""
        if len(chunk.data) != chunk.size or hashlib.sha256(chunk.data).hexdigest() != chunk.sha256:
            raise Refused(f"file of item {chunk.item[:12]} does not match its SHA-256", 0x83, "media_mismatch")
        partial = self._file(device, chunk)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, chunk.data)
        finally:
            os.close(fd)
        self.sync.written(partial)
        return partial

    def add(self, device: str, chunk: Chunk) -> Path | None:
        """Store one chunk durably; the whole file (checked against its SHA-256) once every chunk is here."""
        if chunk.total == 1:
            return self._whole(device, chunk)
        key = (device, chunk.item, chunk.total)
        known = self._db.execute("SELECT size, sha256 FROM partials WHERE device=? AND item=? AND total=?",
                                 key).fetchone()
        if known is None:
            sets = self._db.execute("SELECT item, total FROM partials WHERE device=? ORDER BY started_ns",
                                    (device,)).fetchall()
            for item, total in sets[:max(0, len(sets) - self.limits.max_partial_sets + 1)]:
                self.drop(device, item, total, "partial_evicted")
            self._db.execute("INSERT INTO partials VALUES (?,?,?,?,?,?)", (*key, chunk.size, chunk.sha256,
                                                                         time.time_ns()))
        elif tuple(known) != (chunk.size, chunk.sha256):
            raise Refused(f"chunk of item {chunk.item[:12]} disagrees with earlier chunks about size/SHA-256",
                          reason="bad_chunk")
        partial = self._file(device, chunk)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, chunk.data, chunk.offset)
        finally:
            os.close(fd)
        self.sync.written(partial)
        self._db.execute("INSERT INTO chunks VALUES (?,?,?,?) ON CONFLICT DO NOTHING", (*key, chunk.index))
        have = self._db.execute("SELECT COUNT(*) FROM chunks WHERE device=? AND item=? AND total=?",
                                key).fetchone()[0]
        if have < chunk.total:
            return None
        digest = hashlib.sha256()
        with open(partial, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        self._db.execute("DELETE FROM chunks WHERE device=? AND item=? AND total=?", key)
        self._db.execute("DELETE FROM partials WHERE device=? AND item=? AND total=?", key)
        if os.path.getsize(partial) != chunk.size or digest.hexdigest() != chunk.sha256:
            partial.unlink()
            raise Refused(f"reassembled file of item {chunk.item[:12]} does not match its SHA-256", 0x83,
                          "media_mismatch")
        # stays where it is (not renamed): see the module docstring
        return partial


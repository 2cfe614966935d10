"""The device Merkle log: every sealed record is a leaf; batches close into signed checkpoints.

Leaf ``i`` is the record with sequence number ``i`` (the Sealer hands items over in order), leaf hash =
SHA-256(0x00 || canonical record bytes). A batch closes after ``batch_max`` content records or
``batch_interval_s`` after its first one; the checkpoint (a C2SP signed note) is written to
``log/checkpoints/`` and sealed as a ``checkpoint`` record, which in turn becomes a leaf of the next batch.
Checkpoint and receipt records do not open a batch by themselves, so an idle device stays quiet.

Layout under the vault::

    log/leaves.bin, log/level-<L>.bin      Merkle store (agent/anchor/merkle.py)
    log/checkpoints/<size:012d>.note       signed checkpoints
    log/anchors/<size:012d>-<anchor>.json  anchor receipts (TSA token, ledger receipt)
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from agent.anchor.base import AnchorReceipt
from agent.anchor.merkle import LeafStore, leaf_hash
from agent.anchor.note import Checkpoint, NoteSigner, parse_checkpoint, parse_note, sign_note
from agent.core.clock import Clock
from agent.core.errors import AgentError, VaultError
from agent.core.fsutil import atomic_write
from agent.core.model import SealedItem
from agent.core.threads import Worker
from agent.signing.layout import bucket_of
from agent.signing.records import canonical, parse_sidecar

log = logging.getLogger(__name__)

QUIET_KINDS = frozenset({"checkpoint", "receipt"})


class SealFn(Protocol):
    """Seals one item (e.g. a closure over Sealer.seal and Sensors.moment)."""

    def __call__(self, kind: str, extra: dict[str, Any]) -> SealedItem: ...


class LogFiles:
    """Paths and reads of the log folder; shared by the writer and the verifier."""

    def __init__(self, log_dir: Path) -> None:
        self.dir = Path(log_dir)
        self.checkpoints = self.dir / "checkpoints"
        self.anchors = self.dir / "anchors"

    def write_checkpoint(self, size: int, note: str) -> None:
        atomic_write(self.checkpoints / f"{size:012d}.note", note.encode("utf-8"))

    def checkpoint_notes(self) -> dict[int, str]:
        out: dict[int, str] = {}
        if self.checkpoints.is_dir():
            for p in sorted(self.checkpoints.glob("*.note")):
                out[int(p.name[:12])] = p.read_text("utf-8")
        return out

    def latest_checkpoint(self) -> tuple[str, Checkpoint] | None:
        notes = self.checkpoint_notes()
        if not notes:
            return None
        note = notes[max(notes)]
        return note, parse_checkpoint(parse_note(note).text)

    def write_receipt(self, r: AnchorReceipt) -> None:
        atomic_write(self.anchors / f"{r.checkpoint_size:012d}-{r.anchor}.json",
                     json.dumps(r.to_json(), sort_keys=True).encode())

    def anchored_size(self, anchors: frozenset[str] | None = None) -> int:
        """Records with seq below this are covered by a checkpoint every named anchor (default: any) holds.

        The quota's eviction rule uses it: media may go only once delivered and ``seq < anchored_size()``.
        """
        best: dict[str, int] = {}
        for r in self.receipts():
            best[r.anchor] = max(best.get(r.anchor, 0), r.checkpoint_size)
        if anchors is None:
            return max(best.values(), default=0)
        return min((best.get(a, 0) for a in anchors), default=0)

    def receipts(self) -> list[AnchorReceipt]:
        out = []
        if self.anchors.is_dir():
            for p in sorted(self.anchors.glob("*.json")):
                try:
                    out.append(AnchorReceipt.from_json(json.loads(p.read_bytes())))
                except (ValueError, KeyError, TypeError):
                    log.warning("unreadable anchor receipt %s", p)
        return out


def record_bytes(item: SealedItem) -> bytes:
    return canonical(item.record)


class DeviceLog:
    """Subscribes to the Sealer, keeps the Merkle log and seals checkpoints. Thread: ``anchor-log``."""

    def __init__(self, vault_dir: Path, *, origin: str, signer: NoteSigner, seal: SealFn, clock: Clock,
                 batch_max: int = 256, batch_interval_s: float = 60.0,
                 on_checkpoint: Callable[[str, Checkpoint], None] | None = None, poll_s: float = 0.2) -> None:
        self.vault_dir = Path(vault_dir)
        self.files = LogFiles(self.vault_dir / "log")
        self.store = LeafStore(self.files.dir)
        self.origin = origin
        self.signer = signer
        self._seal = seal
        self.clock = clock
        self.batch_max = batch_max
        self.batch_interval_ns = int(batch_interval_s * 1e9)
        self.on_checkpoint = on_checkpoint
        self.poll_s = poll_s
        self._queue: queue.SimpleQueue[SealedItem] = queue.SimpleQueue()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: Worker | None = None
        self._closed = False
        latest = self.files.latest_checkpoint()
        self.last_checkpoint: Checkpoint | None = None if latest is None else latest[1]
        self._pending = 0  # content leaves since the last checkpoint
        self._first_pending_ns: int | None = None
        self.catch_up()

    # --- feeding ---------------------------------------------------------------------------------------
    def on_sealed(self, item: SealedItem) -> None:
        """Sealer listener: never blocks, only queues."""
        self._queue.put_nowait(item)

    def _sidecar_body(self, seq: int) -> tuple[str, bytes] | None:
        bucket = self.vault_dir / "items" / bucket_of(seq)
        for p in sorted(bucket.glob(f"{seq:012d}.*.rec")):
            rec = parse_sidecar(p.read_bytes(), str(p))
            return str(rec.record.get("kind")), rec.body
        return None

    def catch_up(self) -> int:
        """Append leaves for records sealed while the log was not listening (first start, crash)."""
        added = 0
        with self._lock:
            while (found := self._sidecar_body(self.store.size)) is not None:
                kind, body = found
                self._add(kind, body)
                added += 1
        if added:
            log.info("merkle log caught up %d record(s) from the vault", added)
        return added

    def _add(self, kind: str, body: bytes) -> None:
        self.store.append(leaf_hash(body), sync=False)  # rebuildable from the vault until a checkpoint syncs
        if kind not in QUIET_KINDS:
            if self._pending == 0:
                self._first_pending_ns = self.clock.mono_ns()
            self._pending += 1

    def _take(self, item: SealedItem) -> None:
        with self._lock:
            if item.seq < self.store.size:
                if self.store.leaf(item.seq) != leaf_hash(record_bytes(item)):
                    # the vault lost records the log had (its tail was cut); the log keeps the evidence of that
                    log.error("seq %d already logged with a different record hash: the vault's tail was "
                              "truncated after logging; new records cannot enter the log", item.seq)
                return
            if item.seq > self.store.size:
                self.catch_up()
            if item.seq == self.store.size:
                self._add(item.kind, record_bytes(item))
            else:
                log.error("merkle log: seq %d arrived but the log expects %d", item.seq, self.store.size)

    def pump(self) -> int:
        """Process everything queued and close a batch if due; returns items taken (tests call this)."""
        n = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._take(item)
            n += 1
            if self._pending >= self.batch_max:
                self.checkpoint()
        self.maybe_checkpoint()
        return n

    # --- batches ---------------------------------------------------------------------------------------
    def due(self) -> bool:
        with self._lock:
            if self._pending == 0 or self._first_pending_ns is None:
                return False
            return (self._pending >= self.batch_max
                    or self.clock.mono_ns() - self._first_pending_ns >= self.batch_interval_ns)

    def maybe_checkpoint(self) -> Checkpoint | None:
        return self.checkpoint() if self.due() else None

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current tree head, store it, and seal it as a ``checkpoint`` record."""
        with self._lock:
            size = self.store.size
            if size == 0 or (self.last_checkpoint is not None and self.last_checkpoint.size == size):
                return None
            self.store.sync()
            cp = Checkpoint(self.origin, size, self.store.root(size))
            note = sign_note(cp.body(), self.signer)
            self.files.write_checkpoint(size, note)
            prev = self.last_checkpoint
            extra: dict[str, Any] = {"origin": cp.origin, "tree_size": size,
                                     "root": base64.b64encode(cp.root).decode(), "note": note}
            if prev is not None:
                extra["consistency"] = {"from_size": prev.size, "proof": [
                    base64.b64encode(h).decode() for h in self.store.consistency_proof(prev.size, size)]}
            self.last_checkpoint = cp
            self._pending = 0
            self._first_pending_ns = None
        try:
            self._seal("checkpoint", extra)
        except AgentError:
            log.exception("could not seal checkpoint of size %d (the note is kept in log/checkpoints)", size)
        if self.on_checkpoint is not None:
            self.on_checkpoint(note, cp)
        return cp

    # --- proofs for export -----------------------------------------------------------------------------
    def proof_for(self, seq: int, size: int | None = None) -> dict[str, Any]:
        """Inclusion proof of record ``seq`` in the checkpoint of ``size`` (default: newest)."""
        with self._lock:
            if size is None:
                if self.last_checkpoint is None:
                    raise VaultError("merkle log: no checkpoint yet")
                size = self.last_checkpoint.size
            return {"seq": seq, "tree_size": size,
                    "proof": [base64.b64encode(h).decode() for h in self.store.inclusion_proof(seq, size)]}

    # --- thread ----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = Worker("anchor-log", self._run, stopping=self._stop)
            self._thread.start()

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                item = self._queue.get(timeout=self.poll_s)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._take(item)
                self.pump()
            except Exception:
                log.exception("merkle log worker error")

    def close(self) -> None:
        """Stop the thread, log what is queued, and close the store (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.stop(10)
        with self._lock:
            while True:
                try:
                    self._take(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.store.sync()
            self.store.close()

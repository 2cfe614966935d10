"""Background anchoring: submit the newest checkpoint to every anchor, retry with backoff, keep receipts.

Only the newest checkpoint matters: it commits to every record before it, so after hours offline one TSA
request and one ledger request cover the whole backlog. Receipts are written to ``log/anchors/`` and sealed
as ``receipt`` records (so they travel with the evidence and the uplink sends them like any other item).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.anchor.base import Anchor, AnchorReceipt
from agent.anchor.log import LogFiles
from agent.anchor.note import Checkpoint
from agent.core.clock import Clock
from agent.core.errors import AgentError, UplinkError

log = logging.getLogger(__name__)

SealReceipt = Callable[[dict[str, Any]], object]


@dataclass
class _State:
    anchored_size: int = 0
    failures: int = 0
    next_try_ns: int = 0
    last_error: str | None = None


class Anchorer:
    """Worker thread ``anchor-worker``; ``run_once`` does one pass (tests drive it directly)."""

    def __init__(self, anchors: Sequence[Anchor], files: LogFiles, *, clock: Clock,
                 seal_receipt: SealReceipt | None = None, backoff_initial_s: float = 5.0,
                 backoff_max_s: float = 600.0, poll_s: float = 1.0,
                 on_receipt: Callable[[AnchorReceipt], None] | None = None) -> None:
        self.anchors = list(anchors)
        self.files = files
        self.clock = clock
        self.seal_receipt = seal_receipt
        self.backoff_initial_ns = int(backoff_initial_s * 1e9)
        self.backoff_max_ns = int(backoff_max_s * 1e9)
        self.poll_s = poll_s
        self.on_receipt = on_receipt
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.state = {a.name: _State() for a in self.anchors}
        for r in files.receipts():
            st = self.state.get(r.anchor)
            if st is not None and r.checkpoint_size > st.anchored_size:
                st.anchored_size = r.checkpoint_size
        latest = files.latest_checkpoint()
        self._latest: tuple[bytes, Checkpoint] | None = None if latest is None else (
            latest[0].encode("utf-8"), latest[1])

    def offer(self, note: str, checkpoint: Checkpoint) -> None:
        """DeviceLog's on_checkpoint hook: remember the newest checkpoint and wake the worker."""
        with self._lock:
            if self._latest is None or checkpoint.size > self._latest[1].size:
                self._latest = (note.encode("utf-8"), checkpoint)
        self._wake.set()

    def pending(self) -> list[str]:
        """Anchors that have not yet anchored the newest checkpoint."""
        with self._lock:
            latest = self._latest
        if latest is None:
            return []
        return [name for name, st in self.state.items() if st.anchored_size < latest[1].size]

    def run_once(self) -> int:
        """Try every anchor that is behind and due; returns how many succeeded."""
        with self._lock:
            latest = self._latest
        if latest is None:
            return 0
        note, cp = latest
        done = 0
        for anchor in self.anchors:
            st = self.state[anchor.name]
            now = self.clock.mono_ns()
            if st.anchored_size >= cp.size or now < st.next_try_ns:
                continue
            try:
                receipt = anchor.submit(note, cp)
            except UplinkError as exc:
                st.failures += 1
                delay = min(self.backoff_max_ns, self.backoff_initial_ns << min(st.failures - 1, 30))
                st.next_try_ns = now + delay
                st.last_error = str(exc)
                log.warning("anchor %s failed (%d in a row, retry in %.0f s): %s",
                            anchor.name, st.failures, delay / 1e9, exc)
                continue
            st.anchored_size, st.failures, st.next_try_ns, st.last_error = cp.size, 0, 0, None
            self._keep(receipt, note)
            done += 1
        return done

    def _keep(self, receipt: AnchorReceipt, note: bytes) -> None:
        self.files.write_receipt(receipt)
        if self.seal_receipt is not None:
            try:
                self.seal_receipt({**receipt.to_json(), "note": note.decode("utf-8")})
            except AgentError:
                log.exception("could not seal %s receipt (kept in log/anchors)", receipt.anchor)
        if self.on_receipt is not None:
            self.on_receipt(receipt)

    def reset_backoff(self) -> None:
        """Uplink came back: try again now instead of waiting out the backoff."""
        for st in self.state.values():
            st.next_try_ns = 0
        self._wake.set()

    # --- thread ----------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="anchor-worker", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("anchor worker error")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def stop(self) -> None:
        """Stop the worker thread (``run_once`` still works); idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        for a in self.anchors:
            a.close()

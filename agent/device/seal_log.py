"""A Sealer listener that says at INFO what the agent seals: per minute, one line per item kind with its count.

Lines are written when the first item of a new minute is sealed (no thread: an idle agent seals nothing
and has nothing to count), e.g. ``sealed in the last 60 s: still ×12 (seq 4120–4141)``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.core.model import SealedItem

log = logging.getLogger("agent.device.sealed")

WINDOW_S = 60.0


@dataclass
class _Count:
    n: int
    first_seq: int
    last_seq: int


class SealLog:
    """``on_sealed`` is the listener; ``flush()`` writes what is counted (the window is otherwise per minute)."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self.clock = window_s, clock
        self._lock = threading.Lock()
        self._since = clock()
        self._counts: dict[str, _Count] = {}

    def on_sealed(self, item: SealedItem) -> None:
        with self._lock:
            now = self.clock()
            if now - self._since >= self.window_s:
                self._flush_locked(now)
            c = self._counts.get(item.kind)
            if c is None:
                self._counts[item.kind] = _Count(1, item.seq, item.seq)
            else:
                c.n, c.last_seq = c.n + 1, item.seq

    def flush(self) -> None:
        with self._lock:
            self._flush_locked(self.clock())

    def _flush_locked(self, now: float) -> None:
        span = now - self._since
        for kind, c in sorted(self._counts.items()):
            seqs = f"seq {c.first_seq}" if c.n == 1 else f"seq {c.first_seq}–{c.last_seq}"
            log.info("sealed in the last %.0f s: %s ×%d (%s)", span, kind, c.n, seqs)
        self._counts.clear()
        self._since = now

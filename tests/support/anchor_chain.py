"""A fast stand-in for the Sealer when thousands of items are needed (offline test, benchmark).

Records are canonical JSON with the Sealer's field names (seq, kind, captured.wall_us, extra); nothing is
written to a vault, so only the Merkle log and the anchors are exercised. The real Sealer is used by
tests/integration/test_anchor_tamper.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from agent.anchor.verify import LogItem
from agent.core.clock import Clock, iso_utc
from agent.core.model import SealedItem
from agent.signing.records import canonical, sha256_hex


class SyntheticChain:
    def __init__(self, clock: Clock, device_id: str = "dev1") -> None:
        self.clock = clock
        self.device_id = device_id
        self.listeners: list[Callable[[SealedItem], None]] = []
        self.items: list[SealedItem] = []
        self._lock = threading.Lock()

    def seal(self, kind: str, extra: dict[str, Any] | None = None, *, wall_ns: int | None = None) -> SealedItem:
        with self._lock:
            seq = len(self.items)
            wall = self.clock.wall_ns() if wall_ns is None else wall_ns
            record = {"v": 1, "device_id": self.device_id, "seq": seq, "kind": kind,
                      "captured": {"wall": iso_utc(wall), "wall_us": wall // 1000,
                                   "mono_us": self.clock.mono_ns() // 1000},
                      "extra": dict(extra or {})}
            item = SealedItem(seq, kind, sha256_hex(canonical(record)), record, f"mem:{seq}", None)
            self.items.append(item)
            for listener in self.listeners:
                listener(item)
        return item

    def log_items(self) -> list[LogItem]:
        return [LogItem(i.seq, i.kind, canonical(i.record), i.record) for i in self.items]

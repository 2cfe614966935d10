"""Which essential part of a process is unhealthy, since when and why: the status's ``health`` section.

Parts report themselves (``ok``/``fail``); a part that misses its own deadline (``expect``) counts as unhealthy
from then. The systemd watchdog is fed only while :meth:`Health.healthy` is true.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.core.clock import iso_utc


@dataclass(frozen=True)
class PartState:
    """One part: healthy or not, since when (monotonic and wall), and the reason."""

    ok: bool
    since_mono: float
    since_wall_ns: int
    reason: str | None = None

    def as_record(self, now: float) -> dict[str, Any]:
        return {"ok": self.ok, "since": iso_utc(self.since_wall_ns), "for_s": round(now - self.since_mono, 1),
                "reason": self.reason}


class Health:
    """Thread-safe part states; a state changes (and its ``since`` moves) only when ok/not-ok flips."""

    def __init__(self, mono: Callable[[], float] = time.monotonic, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self._mono = mono
        self._wall_ns = wall_ns
        self._lock = threading.Lock()
        self._parts: dict[str, PartState] = {}
        self._checks: dict[str, Callable[[], str | None]] = {}

    def ok(self, part: str) -> None:
        self._set(part, True, None)

    def fail(self, part: str, reason: str) -> None:
        self._set(part, False, reason[:300])

    def check(self, part: str, probe: Callable[[], str | None]) -> None:
        """A part judged on demand: ``probe`` returns None when healthy, else the reason."""
        with self._lock:
            self._checks[part] = probe

    def _set(self, part: str, ok: bool, reason: str | None) -> None:
        with self._lock:
            cur = self._parts.get(part)
            if cur is not None and cur.ok == ok:
                if not ok and reason != cur.reason:
                    self._parts[part] = PartState(ok, cur.since_mono, cur.since_wall_ns, reason)
                return
            self._parts[part] = PartState(ok, self._mono(), self._wall_ns(), reason)

    def _probe(self) -> None:
        with self._lock:
            checks = list(self._checks.items())
        for part, probe in checks:
            try:
                reason = probe()
            except Exception as exc:
                reason = f"health probe failed: {type(exc).__name__}: {exc}"
            self._set(part, reason is None, reason)

    def unhealthy(self) -> dict[str, PartState]:
        """Parts not healthy right now."""
        self._probe()
        with self._lock:
            return {p: s for p, s in self._parts.items() if not s.ok}

    def healthy(self) -> bool:
        return not self.unhealthy()

    def report(self) -> dict[str, Any]:
        """``{"ok": bool, "parts": {part: {ok, since, for_s, reason}}}`` for the status document."""
        self._probe()
        now = self._mono()
        with self._lock:
            parts = {p: s.as_record(now) for p, s in sorted(self._parts.items())}
        return {"ok": all(p["ok"] for p in parts.values()), "parts": parts}

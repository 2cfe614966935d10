"""What `evidence-agent run` and `demo` print at the end: plain sentences, never a Python repr.

The same facts go into the retained status document (the runtime's ``health()``): undelivered and
rejected items, C2PA failures and the alarms raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.core.model import SealedItem
from agent.core.supervisor import EXIT_SUPERVISION
from agent.device.config import AgentConfig

if TYPE_CHECKING:
    from agent.device.runtime import Agent
    from agent.uplink.outbox_jobs import OutboxStats


@dataclass
class RunStats:
    """What this run sealed, the alarms it raised and what went wrong (summary and status topic)."""

    sealed: dict[str, int] = field(default_factory=dict)
    last: SealedItem | None = None
    errors: list[str] = field(default_factory=list)
    alarms: dict[str, int] = field(default_factory=dict)
    c2pa_failures: int = 0
    last_c2pa_error: str | None = None

    def count(self, item: SealedItem) -> None:
        self.sealed[item.kind] = self.sealed.get(item.kind, 0) + 1
        self.last = item
        extra = item.record.get("extra") or {}
        if item.kind in ("event", "tamper") and extra.get("phase", "onset") == "onset":
            name = str(extra.get("type") or extra.get("state") or item.kind)
            self.alarms[name] = self.alarms.get(name, 0) + 1
        c2pa = extra.get("c2pa")
        if isinstance(c2pa, dict) and c2pa.get("error"):
            self.c2pa_failures += 1
            self.last_c2pa_error = str(c2pa["error"])


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def drain_line(drained: bool, stats: OutboxStats) -> str:
    """One line: all delivered, or how much is still pending and how much the broker refused."""
    if drained and stats.pending == 0 and stats.rejected == 0:
        return f"uplink: all delivered ({stats.delivered} messages acknowledged by the broker)"
    parts = []
    if stats.pending or stats.in_flight:
        parts.append(f"{stats.pending} pending ({_mb(stats.pending_bytes)}), {stats.in_flight} in flight")
    if stats.rejected:
        parts.append(f"{stats.rejected} rejected by the broker (kept; see `evidence-agent requeue --list`)")
    return (f"uplink: NOT all delivered: {'; '.join(parts) or 'still waiting for acknowledgements'}; "
            f"{stats.delivered} delivered. Nothing is lost: the outbox sends the rest at the next start.")


def undelivered_lines(stats: OutboxStats, last_error: str | None) -> list[str]:
    """Advice that fits each case: pending items need nothing (they go at the next start); items the broker
    refused need their cause fixed and a requeue."""
    lines = []
    if stats.pending:
        lines.append(f"undelivered: {stats.pending} pending (last error: {last_error or 'none'}); nothing to do: "
                     "they are kept and sent when the service runs again with the broker reachable")
    if stats.rejected:
        lines.append(f"rejected: {stats.rejected} refused by the broker (kept in the outbox); fix the cause "
                     "(`evidence-agent requeue --config FILE --list` shows why), then "
                     "`evidence-agent requeue --config FILE` re-sends them")
    return lines


def run_summary(agent: Agent, cfg: AgentConfig) -> list[str]:
    """The closing lines of a run."""
    st = agent.stats
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(st.sealed.items()))
    lines = [f"sealed {sum(st.sealed.values())} items ({kinds}) into {cfg.vault.path}"]
    if st.last is not None:
        lines.append(f"last: seq {st.last.seq} {st.last.kind} {st.last.record_hash}")
    alarms = ", ".join(f"{k} {n}x" for k, n in sorted(st.alarms.items()))
    lines.append(f"alarms: {alarms or 'none'}")
    if st.c2pa_failures:
        lines.append(f"C2PA: {st.c2pa_failures} item(s) sealed WITHOUT Content Credentials: {st.last_c2pa_error}")
    if agent.uplink is not None:
        stats = agent.uplink.outbox.stats()
        lines += undelivered_lines(stats, agent.uplink.link.last_error)
    if agent.hub.error is not None:
        lines.append(f"camera: FAILED: {agent.hub.error}")
    if agent.failed is not None:
        lines.append(f"STOPPED ON A FAILURE (exit {EXIT_SUPERVISION}, systemd restarts the service): {agent.failed}")
    for part, state in sorted(agent.parts.unhealthy().items()):
        lines.append(f"unhealthy: {part}: {state.reason}")
    if st.errors:
        lines.append(f"errors: {len(st.errors)}, last: {st.errors[-1]}")
    return lines

"""Incremental chain verification: each record is checked once, against its stored neighbours only.

The old ingest ran the whole-folder verifier after every record (31 % of its time, growing with the
vault). What a stored record adds to a device's chain can be checked locally, in any arrival order:
its ``prev`` must be the hash of the stored seq-1, the stored seq+1 must name it as ``prev``, seq 0
must start the chain with a restart record, and within one boot the sealing clock only moves forward.
Signature, certificate chain and media hash are checked on arrival (ingest, reassembly), so together
this is what ``evidence-agent verify`` would find — without reading anything else back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agent.signing.records import GENESIS_PREV


class Executor(Protocol):
    """Runs one statement with ``?`` placeholders (agent.customs.state.base.GroupState)."""

    def execute(self, sql: str, args: Any = ..., /) -> Any: ...

@dataclass(frozen=True)
class Link:
    """What the chain check needs of one record."""

    seq: int
    item: str
    prev: str
    kind: str
    boot: str | None
    mono_us: int | None

    @classmethod
    def of(cls, item: str, record: dict[str, Any]) -> Link:
        captured = record.get("captured") if isinstance(record.get("captured"), dict) else {}
        sealed = record.get("sealed") if isinstance(record.get("sealed"), dict) else {}
        mono = sealed.get("mono_us") if isinstance(sealed, dict) else None
        return cls(seq=int(record["seq"]), item=item, prev=str(record.get("prev")), kind=str(record.get("kind")),
                   boot=None if not isinstance(captured, dict) else captured.get("boot_id"),
                   mono_us=mono if isinstance(mono, int) else None)


def problems(cur: Link, before: Link | None, after: Link | None) -> list[str]:
    """Chain problems ``cur`` shows against its stored neighbours (either may still be missing)."""
    out: list[str] = []
    if cur.seq == 0:
        if cur.prev != GENESIS_PREV:
            out.append("seq 0 does not start the chain")
        if cur.kind != "restart":
            out.append("seq 0 is not a restart record")
    if before is not None:
        if cur.prev != before.item:
            out.append(f"chain broken: seq {cur.seq} does not link to the stored seq {before.seq}")
        elif _backwards(before, cur):
            out.append(f"seq {cur.seq} sealed before seq {before.seq} on the monotonic clock (reordered)")
    if after is not None:
        if after.prev != cur.item:
            out.append(f"chain broken: the stored seq {after.seq} does not link to seq {cur.seq}")
        elif _backwards(cur, after):
            out.append(f"seq {after.seq} sealed before seq {cur.seq} on the monotonic clock (reordered)")
    return out


def _backwards(a: Link, b: Link) -> bool:
    if b.kind == "restart" or a.boot is None or a.boot != b.boot or a.mono_us is None or b.mono_us is None:
        return False
    return b.mono_us < a.mono_us


class StateLinks:
    """Chain links in the ingest's group state (agent.customs.state; the caller owns the transaction)."""

    def __init__(self, db: Executor) -> None:
        self.db = db

    def _get(self, device: str, seq: int) -> Link | None:
        row = self.db.execute("SELECT seq, item, prev, kind, boot, mono_us FROM chain_links WHERE device=? AND "
                              "seq=? LIMIT 1", (device, seq)).fetchone()
        return None if row is None else Link(*row)

    def add(self, device: str, link: Link) -> list[str]:
        """Store the link and return the problems it shows (empty: the chain holds so far)."""
        found = problems(link, self._get(device, link.seq - 1) if link.seq > 0 else None,
                         self._get(device, link.seq + 1))
        self.db.execute("INSERT INTO chain_links VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                        (device, link.seq, link.item, link.prev, link.kind, link.boot, link.mono_us))
        return found

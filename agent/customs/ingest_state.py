"""Ingest bookkeeping on the group state (agent.customs.state): counters, the bounded quarantine and the
streamed per-device report.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.fsutil import atomic_write
from agent.customs.guard import Refused, check_json_size

if TYPE_CHECKING:
    from agent.customs.guard import Limits
    from agent.customs.state.base import GroupState
    from agent.wire.mqtt import Inbound

REPORT_LIST_CAP = 1000  # seq lists in the report are cut here; the counts are always complete
REASON_NAMES = {0x99: "Payload format invalid", 0x83: "Implementation specific error", 0x87: "Not authorized",
                0x90: "Topic Name invalid"}


@dataclass
class DeviceReport:
    site: str
    records: int = 0
    max_seq: int = -1
    missing: list[int] = field(default_factory=list)  # first REPORT_LIST_CAP missing seqs
    missing_count: int = 0
    incomplete: list[int] = field(default_factory=list)  # record stored, media not (yet) complete
    duplicates: int = 0
    refused: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # reason -> count
    forks: list[dict[str, Any]] = field(default_factory=list)  # second records for a stored seq (findings)
    fork_count: int = 0
    alerts: int = 0
    partials_dropped: int = 0
    receipts: int = 0
    orphan_media: list[str] = field(default_factory=list)  # items whose media is complete, record missing
    orphan_media_count: int = 0
    # seqs the device reported delivered (retained status: outbox drained up to last_sealed) yet not stored
    lost_after_delivery: list[int] = field(default_factory=list)
    lost_after_delivery_count: int = 0
    delivered_upto: int | None = None
    retained_junk: list[dict[str, Any]] = field(default_factory=list)  # {"topic", "bytes"}: retained, not status
    retained_junk_count: int = 0
    status: dict[str, Any] | None = None
    availability: str | None = None

    @property
    def findings(self) -> bool:
        """Anything an officer must look at (the ingest exits 1)."""
        return bool(self.missing_count or self.incomplete or self.refused or self.fork_count
                    or self.lost_after_delivery_count or self.orphan_media_count or self.retained_junk_count)


def count(db: GroupState, device: str, name: str, n: int = 1) -> None:
    db.execute("INSERT INTO counters VALUES (?,?,?) ON CONFLICT(device, name) DO UPDATE SET "
               "n=counters.n+excluded.n",
               (device, name, n))


def counter(db: GroupState, device: str, name: str) -> int:
    row = db.execute("SELECT n FROM counters WHERE device=? AND name=?", (device, name)).fetchone()
    return int(row[0]) if row is not None else 0


def keep_receipt(db: GroupState, folder: Path, device: str, payload: bytes, limits: Limits) -> None:
    """An anchor receipt, kept once by content, within the device's receipt count and byte budget."""
    check_json_size(payload, limits.max_receipt_bytes, limits, "receipt")
    path = folder / f"{hashlib.sha256(payload).hexdigest()}.json"
    if path.exists():
        count(db, device, "duplicates")
        return
    kept, used = counter(db, device, "receipts"), counter(db, device, "receipt_bytes")
    if kept >= limits.max_receipts or used + len(payload) > limits.max_receipt_total_bytes:
        raise Refused(f"{device} has {kept} receipts ({used} bytes) kept: over the per-device bound (max_receipts="
                      f"{limits.max_receipts}, max_receipt_total_bytes={limits.max_receipt_total_bytes})",
                      0x97, "receipt_limit")
    atomic_write(path, payload)
    count(db, device, "receipts")
    count(db, device, "receipt_bytes", len(payload))


def delivered_upto(status: Any) -> int | None:
    """The last seq a device's status says is delivered: its outbox drained (nothing pending, in flight or
    refused by the broker) after sealing ``last_sealed.seq`` (agent/uplink/service.py); else None."""
    if not isinstance(status, dict):
        return None
    outbox, last = status.get("outbox"), status.get("last_sealed")
    if not isinstance(outbox, dict) or not isinstance(last, dict):
        return None
    if any(outbox.get(k) != 0 for k in ("pending", "in_flight", "rejected")):
        return None
    seq = last.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 10**12:
        return None
    return seq


def lost_after_delivery(db: GroupState, device: str, upto: int, rep: DeviceReport) -> None:
    """Seqs up to ``upto`` that are not stored although the device reported them delivered: the broker
    acknowledged them and they never reached the ingest (a thief in the shared group, a broker fault)."""
    rep.delivered_upto = upto
    expect = 0
    for (seq,) in db.execute("SELECT seq FROM records WHERE device=? AND seq<=? ORDER BY seq", (device, upto)):
        _lost(rep, expect, seq)
        expect = seq + 1
    _lost(rep, expect, upto + 1)


def _lost(rep: DeviceReport, start: int, end: int) -> None:
    if end > start:
        rep.lost_after_delivery_count += end - start
        room = REPORT_LIST_CAP - len(rep.lost_after_delivery)
        if room > 0:
            rep.lost_after_delivery.extend(range(start, min(end, start + room)))


class Quarantine:
    """Refused messages kept for an officer to look at, per device, within a byte and a file budget."""

    def __init__(self, db: GroupState, root: Path, limits: Limits) -> None:
        self.db, self.root, self.limits = db, root, limits

    def put(self, device: str, msg: Inbound, exc: Refused) -> None:
        row = self.db.execute("SELECT files, bytes FROM quarantine_use WHERE device=?", (device,)).fetchone()
        files, used = row if row is not None else (0, 0)
        if files >= self.limits.quarantine_files:
            count(self.db, device, "quarantine_full")
            return
        keep_payload = used + len(msg.payload) <= self.limits.quarantine_bytes
        folder = self.root / (device if device != "?" else "_bad_topic")
        name = f"{time.time_ns()}-{hashlib.sha256(msg.payload).hexdigest()[:16]}"
        if keep_payload:
            atomic_write(folder / f"{name}.bin", msg.payload, sync_dir=False)
        meta = json.dumps({"topic": msg.topic[:512], "user_properties": [list(p) for p in msg.user_props[:32]],
                           "problem": str(exc)[:2000], "reason": exc.reason, "reason_code": exc.code,
                           "mqtt_reason": REASON_NAMES.get(exc.code, "Unspecified error"),
                           "payload_bytes": len(msg.payload), "payload_kept": keep_payload}, indent=1).encode()
        atomic_write(folder / f"{name}.json", meta)
        self.db.execute("INSERT INTO quarantine_use VALUES (?,?,?) ON CONFLICT(device) DO UPDATE SET "
                        "files=quarantine_use.files+1, bytes=quarantine_use.bytes+?",
                        (device, 1, len(msg.payload) if keep_payload else 0,
                         len(msg.payload) if keep_payload else 0))


def _gaps(db: GroupState, device: str, rep: DeviceReport) -> None:
    """Missing seqs by walking the stored ones in order (never a range over a device-chosen maximum)."""
    expect = 0
    for (seq,) in db.execute("SELECT seq FROM records WHERE device=? ORDER BY seq", (device,)):
        if seq > expect:
            rep.missing_count += seq - expect
            room = REPORT_LIST_CAP - len(rep.missing)
            if room > 0:
                rep.missing.extend(range(expect, min(seq, expect + room)))
        expect = seq + 1
        rep.records += 1
        rep.max_seq = seq


def build_report(db: GroupState) -> dict[str, DeviceReport]:
    out: dict[str, DeviceReport] = {}
    for device, site in db.execute("SELECT device, MIN(site) FROM records GROUP BY device").fetchall():
        rep = out[device] = DeviceReport(site=site)
        _gaps(db, device, rep)
        rep.incomplete = [r[0] for r in db.execute(
            "SELECT seq FROM records WHERE device=? AND media_done=0 ORDER BY seq LIMIT ?",
            (device, REPORT_LIST_CAP))]
    for device, seq, item, path in db.execute(
            "SELECT device, seq, item, path FROM forks ORDER BY device, seq").fetchall():
        rep = out.setdefault(device, DeviceReport(site="?"))
        rep.fork_count += 1
        if len(rep.forks) < REPORT_LIST_CAP:
            rep.forks.append({"seq": seq, "item": item, "kept": path})
    for device, name, n in db.execute("SELECT device, name, n FROM counters").fetchall():
        rep = out.setdefault(device, DeviceReport(site="?"))
        if name.startswith("refused:"):
            rep.refusals[name.split(":", 1)[1]] = n
        elif name in ("duplicates", "refused", "alerts"):
            setattr(rep, name, n)
        elif name.startswith("partial_"):
            rep.partials_dropped += n
        elif name == "receipts":
            rep.receipts = n
        elif name == "orphan_media":
            rep.orphan_media_count = n
    for device, rep in out.items():
        if rep.orphan_media_count:
            rep.orphan_media = [r[0] for r in db.execute(
                "SELECT m.item FROM media m WHERE m.device=? AND NOT EXISTS (SELECT 1 FROM records r "
                "WHERE r.device=m.device AND r.item=m.item) ORDER BY m.item LIMIT ?", (device, REPORT_LIST_CAP))]
    return out

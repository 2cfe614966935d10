"""The inspection procedure, one method per step; each step is a signed command whose device-signed reply
(seq and record hash of what the device sealed) lands in the session's timeline.

Used by ``evidence-officer inspection ...`` and the console alike; the transport is any object with
``request(site, device, command, args, timeout=...)`` (an ``OfficerClient``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from agent.core.errors import AgentError, CommandError, ConfigError
from agent.core.vocab import NOTICE_COMMAND
from agent.customs.inspection import evidence as ev
from agent.customs.inspection.geo import check_fix
from agent.customs.inspection.model import CHECKIN_STEPS, Entry, InspectionStore, now_iso

log = logging.getLogger(__name__)


class Commander(Protocol):
    def request(self, site: str, device: str, command: str, args: dict[str, Any] | None = None, *,
                nonce: str | None = None, timeout: float = 10.0) -> dict[str, Any]: ...


class InspectionService:
    """Drives one case; every method saves the session before it returns."""

    def __init__(self, store: InspectionStore, case: str, commander: Commander | None = None, *,
                 officer: str | None = None, timeout: float = 15.0) -> None:
        self.store, self.commander, self.officer, self.timeout = store, commander, officer, timeout
        self.inspection = store.load(case)

    # -- plumbing --------------------------------------------------------------------------------
    def _request(self, command: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.commander is None:
            raise ConfigError("this step needs a broker connection (--broker)")
        insp = self.inspection
        reply = self.commander.request(insp.site, insp.device, command, args or {}, timeout=self.timeout)
        return dict(reply.get("result") or {})

    def _add(self, entry: Entry) -> Entry:
        self.inspection.entries.append(entry)
        self.store.save(self.inspection)
        return entry

    def _require(self, *states: str) -> None:
        if self.inspection.state not in states:
            raise CommandError(f"inspection {self.inspection.case} is {self.inspection.state}; this step needs "
                               f"it {' or '.join(states)}")

    # -- before ----------------------------------------------------------------------------------
    def notice(self) -> Entry:
        """Advance notice: the signed ``inspection.notice`` to the device, which seals it and lists the case as
        upcoming. The delivery (the device's seq, or why it failed) is kept on the case either way; a failure
        is raised after it is recorded."""
        self._require("open")
        insp = self.inspection
        if insp.scheduled is None:
            raise ConfigError(f"inspection {insp.case} has no scheduled time (inspection open --scheduled ISO8601)")
        args = {"case": insp.case, "site": insp.site, "enterprise": insp.enterprise, "scheduled": insp.scheduled,
                "planned_minutes": insp.planned_minutes, "officers": insp.officers,
                **({"registered_site": insp.registered_site} if insp.registered_site else {})}
        try:
            result = self._request(NOTICE_COMMAND, args)
        except AgentError as exc:
            insp.notice = {"at": now_iso(), "delivered": False, "scheduled": insp.scheduled, "error": str(exc)[:500]}
            self._add(Entry(at=now_iso(), kind="notice", ok=False, officer=self.officer,
                            note=f"advance notice for {insp.scheduled} NOT delivered: {str(exc)[:300]}"))
            raise
        insp.notice = {"at": now_iso(), "delivered": True, "scheduled": result.get("scheduled", insp.scheduled),
                       "seq": result.get("seq"), "record_hash": result.get("record_hash"), "error": None}
        return self._add(Entry(at=now_iso(), kind="notice", ok=True, officer=self.officer, seq=result.get("seq"),
                               record_hash=result.get("record_hash"),
                               note=f"advance notice for {insp.notice['scheduled']} delivered and sealed by the device",
                               details={"scheduled": insp.notice["scheduled"]}))

    def readiness(self) -> Entry:
        """The device's self-test (camera, GPS, clock, broker, disk, certificate), recorded pass or fail."""
        result = self._request("selftest")
        checks = result.get("checks") or []
        failed = [c.get("name") for c in checks if isinstance(c, dict) and c.get("status") == "fail"]
        warned = [c.get("name") for c in checks if isinstance(c, dict) and c.get("status") == "warn"]
        passed = bool(result.get("passed", not failed))
        result_word = "fail" if not passed else "warn" if warned else "pass"
        self.inspection.readiness = {"at": now_iso(), "passed": passed, "result": result_word, "failed": failed,
                                     "warnings": warned,
                                     "checks": checks, "sealed": result.get("sealed")}
        sealed = result.get("sealed") or {}
        note = (f"self-test FAILED: {', '.join(map(str, failed))}" if not passed else
                f"self-test passed with warnings: {', '.join(map(str, warned))}" if warned else "self-test passed")
        return self._add(Entry(at=now_iso(), kind="readiness", ok=passed, officer=self.officer,
                               seq=sealed.get("seq"), record_hash=sealed.get("record_hash") or sealed.get("hash"),
                               note=note, details={"checks": checks, "warnings": warned}))

    def start(self) -> Entry:
        """``inspection.start`` on the device; idempotent (a retry after a reconnect gets the same seq)."""
        self._require("open", "started")
        insp = self.inspection
        result = self._request("inspection.start", {
            "case": insp.case, "enterprise": insp.enterprise, "officers": insp.officers,
            "planned_minutes": insp.planned_minutes, "registered_site": insp.registered_site})
        if insp.state == "started" and result.get("seq") == insp.start_seq:
            return next(e for e in insp.entries if e.kind == "start")
        insp.state, insp.started_at, insp.start_seq = "started", now_iso(), int(result["seq"])
        return self._add(Entry(at=insp.started_at, kind="start", seq=insp.start_seq, officer=self.officer,
                               record_hash=result.get("record_hash"), ok=True,
                               details={"gps": result.get("gps"), "time": result.get("time")}))

    # -- check-in --------------------------------------------------------------------------------
    def checkin(self, step: str, note: str | None = None) -> Entry:
        """One check-in step as a labelled, sealed still; ``location`` also judges the fix against the site."""
        if step not in CHECKIN_STEPS:
            raise ConfigError(f"unknown check-in step {step!r} (one of {', '.join(CHECKIN_STEPS)})")
        self._require("started")
        result = self._request("snapshot", {"label": step, **({"note": note} if note else {})})
        details: dict[str, Any] = {"gps": result.get("gps"), "time": result.get("time"),
                                   "media": result.get("media")}
        ok: bool | None = True
        if step == "location":
            verdict = check_fix(self.inspection.polygon, dict(result.get("gps") or {}))
            details["location"] = verdict.as_dict()
            ok = bool(verdict.inside) and verdict.quality != "poor"
        entry = Entry(at=now_iso(), kind="checkin", label=step, note=note, seq=result.get("seq"),
                      record_hash=result.get("record_hash"), ok=ok, officer=self.officer, details=details)
        current = self.inspection.checkin.get(step)
        if current is None or not current.ok:  # a confirmed step stays; a later re-check goes to the timeline
            self.inspection.checkin[step] = entry
        return self._add(entry)

    # -- during ----------------------------------------------------------------------------------
    def mark(self, note: str) -> Entry:
        self._require("started")
        result = self._request("mark", {"note": note})
        return self._add(Entry(at=now_iso(), kind="mark", note=note, seq=result.get("seq"),
                               record_hash=result.get("record_hash"), officer=self.officer))

    def snapshot(self, note: str | None = None, label: str = "inspection") -> Entry:
        self._require("started")
        result = self._request("snapshot", {"label": label, **({"note": note} if note else {})})
        return self._add(Entry(at=now_iso(), kind="snapshot", label=label, note=note, seq=result.get("seq"),
                               record_hash=result.get("record_hash"), officer=self.officer,
                               details={"gps": result.get("gps"), "media": result.get("media")}))

    def decision(self, decision: str, reason: str) -> Entry:
        """"continue" or "shift_to_onsite", with the reason, sealed on the device."""
        self._require("started")
        result = self._request("inspection.decision", {"case": self.inspection.case, "decision": decision,
                                                       "reason": reason})
        return self._add(Entry(at=now_iso(), kind="decision", label=decision, note=reason, seq=result.get("seq"),
                               record_hash=result.get("record_hash"), officer=self.officer))

    def end(self, outcome: str | None = None, note: str | None = None) -> Entry:
        self._require("started")
        insp = self.inspection
        if outcome is None:
            shifted = any(e.kind == "decision" and e.label == "shift_to_onsite" for e in insp.entries)
            outcome = "shift_to_onsite" if shifted else "completed"
        result = self._request("inspection.end", {"case": insp.case, "outcome": outcome,
                                                  **({"note": note} if note else {})})
        insp.state, insp.ended_at, insp.end_seq, insp.outcome = "ended", now_iso(), int(result["seq"]), outcome
        return self._add(Entry(at=insp.ended_at, kind="end", seq=insp.end_seq, label=outcome, note=note,
                               record_hash=result.get("record_hash"), officer=self.officer))

    # -- what the evidence says ------------------------------------------------------------------
    def items(self, evidence_root: Path) -> list[ev.Item]:
        insp = self.inspection
        if insp.start_seq is None:
            return []
        return ev.load_items(ev.device_dir_of(evidence_root, insp.device), insp.start_seq, insp.end_seq)

    def alerts(self, evidence_root: Path) -> list[dict[str, Any]]:
        return ev.alerts(self.items(evidence_root))

    def require_ended(self) -> None:
        """A report covers a whole case: building one before ``inspection_end`` is refused (409 in the console)."""
        if self.inspection.state not in ("ended", "reported"):
            raise CommandError(f"inspection {self.inspection.case} is {self.inspection.state}: end the inspection "
                               "before building its report")

    def stills(self, items: list[ev.Item]) -> list[dict[str, Any]]:
        """The stills among ``items`` (``items()``) as the device sealed them (seq, label, capture time, GPS,
        whether the media has arrived), with the officer's note when the still was a check-in or a snapshot."""
        notes = {e.seq: e for e in self.inspection.entries if e.seq is not None}
        out = []
        for it in items:
            if it.kind != "still":
                continue
            entry = notes.get(it.seq)
            label = it.extra.get("label")
            out.append({"seq": it.seq, "label": label if isinstance(label, str) else None, "at": it.wall,
                        "gps": it.record.get("gps"), "time": it.record.get("time"), "received": it.media is not None,
                        "note": entry.note if entry is not None else None,
                        "step": entry.kind if entry is not None else None})
        return out

    def still(self, evidence_root: Path, seq: int) -> tuple[Path, str]:
        """The media file and type of still ``seq``, only when it belongs to this case and has arrived."""
        insp = self.inspection
        if insp.start_seq is None or seq < insp.start_seq or (insp.end_seq is not None and seq > insp.end_seq):
            raise ConfigError(f"seq {seq} is not part of inspection {insp.case}")
        found = ev.load_items(ev.device_dir_of(evidence_root, insp.device), seq, seq)
        if not found or found[0].kind != "still":
            raise ConfigError(f"no still with seq {seq} has been received for inspection {insp.case}")
        media = found[0].record.get("media") or {}
        kind = media.get("type")
        if found[0].media is None or kind not in ev.IMAGE_TYPES:
            raise ConfigError(f"the picture of seq {seq} has not been received (or is not an image)")
        return found[0].media, str(kind)

    def seal_report(self, sha256: str, size: int, items: int) -> dict[str, Any]:
        """Ask the device to seal the signed report manifest's hash into its chain."""
        return self._request("inspection.report", {"case": self.inspection.case, "sha256": sha256, "size": size,
                                                   "items": items})

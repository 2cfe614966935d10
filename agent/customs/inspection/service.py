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
from agent.core.vocab import NOTICE_COMMAND, STILL_RESOLUTIONS
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
    def _request(self, command: str, args: dict[str, Any] | None = None, device: str | None = None) -> dict[str, Any]:
        """The command to ``device`` (one of the case's; the primary when None), its verified result."""
        if self.commander is None:
            raise ConfigError("this step needs a broker connection (--broker)")
        insp = self.inspection
        reply = self.commander.request(insp.site, self.device(device), command, args or {}, timeout=self.timeout)
        return dict(reply.get("result") or {})

    def device(self, device: str | None) -> str:
        """The device a step goes to: the officer's pick when the case names it, else the primary."""
        try:
            return self.inspection.pick(device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def _add(self, entry: Entry) -> Entry:
        self.inspection.entries.append(entry)
        self.store.save(self.inspection)
        return entry

    def _require(self, *states: str) -> None:
        if self.inspection.state not in states:
            raise CommandError(f"inspection {self.inspection.case} is {self.inspection.state}; this step needs "
                               f"it {' or '.join(states)}")

    # -- before ----------------------------------------------------------------------------------
    def notice(self, device: str | None = None) -> Entry:
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
            result = self._request(NOTICE_COMMAND, args, device)
        except AgentError as exc:
            insp.notice = {"at": now_iso(), "delivered": False, "scheduled": insp.scheduled, "error": str(exc)[:500]}
            self._add(Entry(at=now_iso(), kind="notice", ok=False, officer=self.officer, device=self.device(device),
                            note=f"advance notice for {insp.scheduled} NOT delivered: {str(exc)[:300]}"))
            raise
        insp.notice = {"at": now_iso(), "delivered": True, "scheduled": result.get("scheduled", insp.scheduled),
                       "seq": result.get("seq"), "record_hash": result.get("record_hash"), "error": None}
        return self._add(Entry(at=now_iso(), kind="notice", ok=True, officer=self.officer, seq=result.get("seq"),
                               device=self.device(device),
                               record_hash=result.get("record_hash"),
                               note=f"advance notice for {insp.notice['scheduled']} delivered and sealed by the device",
                               details={"scheduled": insp.notice["scheduled"]}))

    def readiness(self, device: str | None = None) -> Entry:
        """The device's self-test (camera, GPS, clock, broker, disk, certificate), recorded pass or fail."""
        result = self._request("selftest", None, device)
        checks = result.get("checks") or []
        failed = [c.get("name") for c in checks if isinstance(c, dict) and c.get("status") == "fail"]
        warned = [c.get("name") for c in checks if isinstance(c, dict) and c.get("status") == "warn"]
        passed = bool(result.get("passed", not failed))
        result_word = "fail" if not passed else "warn" if warned else "pass"
        self.inspection.readiness = {"at": now_iso(), "passed": passed, "result": result_word, "failed": failed,
                                     "warnings": warned,
                                     "checks": checks, "sealed": result.get("sealed"), "device": self.device(device)}
        sealed = result.get("sealed") or {}
        note = (f"self-test FAILED: {', '.join(map(str, failed))}" if not passed else
                f"self-test passed with warnings: {', '.join(map(str, warned))}" if warned else "self-test passed")
        return self._add(Entry(at=now_iso(), kind="readiness", ok=passed, officer=self.officer,
                               device=self.device(device),
                               seq=sealed.get("seq"), record_hash=sealed.get("record_hash") or sealed.get("hash"),
                               note=note, details={"checks": checks, "warnings": warned}))

    def start(self) -> Entry:
        """``inspection.start`` on every device of the case (the primary first), so each chain says when the
        case began; idempotent per device (a retry after a reconnect gets the same seq, and a device that
        failed is asked again). Returns the primary's entry."""
        self._require("open", "started")
        insp = self.inspection
        args = {"case": insp.case, "enterprise": insp.enterprise, "officers": insp.officers,
                "planned_minutes": insp.planned_minutes, "registered_site": insp.registered_site}
        first: Entry | None = None
        for device in insp.devices:
            start_seq, _ = insp.run_of(device)
            result = self._request("inspection.start", args, device)
            seq = int(result["seq"])
            if start_seq == seq:
                entry = next((e for e in insp.entries if e.kind == "start" and e.seq == seq
                              and (e.device or insp.device) == device), None)
            else:
                entry = None
            if entry is None:
                insp.runs.setdefault(device, {})["start_seq"] = seq
                if device == insp.device:
                    insp.start_seq, insp.started_at = seq, now_iso()
                entry = self._add(Entry(at=now_iso(), kind="start", seq=seq, officer=self.officer, device=device,
                                        record_hash=result.get("record_hash"), ok=True,
                                        details={"gps": result.get("gps"), "time": result.get("time")}))
            first = first or entry
        insp.state = "started"
        self.store.save(insp)
        assert first is not None
        return first

    # -- check-in --------------------------------------------------------------------------------
    def checkin(self, step: str, note: str | None = None, device: str | None = None,
                resolution: str = "stream") -> Entry:
        """One check-in step as a labelled, sealed still; ``location`` also judges the fix against the site.
        ``resolution="full"`` asks for the full sensor (a readable document)."""
        if step not in CHECKIN_STEPS:
            raise ConfigError(f"unknown check-in step {step!r} (one of {', '.join(CHECKIN_STEPS)})")
        self._require("started")
        result = self._request("snapshot", {"label": step, **({"note": note} if note else {}),
                                            **_resolution(resolution)}, device)
        details: dict[str, Any] = {"gps": result.get("gps"), "time": result.get("time"),
                                   "media": result.get("media"), **_size(result)}
        ok: bool | None = True
        if step == "location":
            verdict = check_fix(self.inspection.polygon, dict(result.get("gps") or {}))
            details["location"] = verdict.as_dict()
            ok = bool(verdict.inside) and verdict.quality != "poor"
        entry = Entry(at=now_iso(), kind="checkin", label=step, note=note, seq=result.get("seq"),
                      device=self.device(device),
                      record_hash=result.get("record_hash"), ok=ok, officer=self.officer, details=details)
        current = self.inspection.checkin.get(step)
        if current is None or not current.ok:  # a confirmed step stays; a later re-check goes to the timeline
            self.inspection.checkin[step] = entry
        return self._add(entry)

    # -- during ----------------------------------------------------------------------------------
    def mark(self, note: str, device: str | None = None) -> Entry:
        self._require("started")
        result = self._request("mark", {"note": note}, device)
        return self._add(Entry(at=now_iso(), kind="mark", note=note, seq=result.get("seq"), device=self.device(device),
                               record_hash=result.get("record_hash"), officer=self.officer))

    def snapshot(self, note: str | None = None, label: str = "inspection", device: str | None = None,
                 resolution: str = "stream") -> Entry:
        """A labelled still now; ``resolution="full"`` asks for the full sensor (a readable document)."""
        self._require("started")
        result = self._request("snapshot", {"label": label, **({"note": note} if note else {}),
                                            **_resolution(resolution)}, device)
        return self._add(Entry(at=now_iso(), kind="snapshot", label=label, note=note, seq=result.get("seq"),
                               device=self.device(device),
                               record_hash=result.get("record_hash"), officer=self.officer,
                               details={"gps": result.get("gps"), "media": result.get("media"), **_size(result)}))

    def decision(self, decision: str, reason: str, device: str | None = None) -> Entry:
        """"continue" or "shift_to_onsite", with the reason, sealed on the device (the primary by default)."""
        self._require("started")
        result = self._request("inspection.decision", {"case": self.inspection.case, "decision": decision,
                                                       "reason": reason}, device)
        return self._add(Entry(at=now_iso(), kind="decision", label=decision, note=reason, seq=result.get("seq"),
                               device=self.device(device),
                               record_hash=result.get("record_hash"), officer=self.officer))

    def end(self, outcome: str | None = None, note: str | None = None) -> Entry:
        self._require("started")
        insp = self.inspection
        if outcome is None:
            shifted = any(e.kind == "decision" and e.label == "shift_to_onsite" for e in insp.entries)
            outcome = "shift_to_onsite" if shifted else "completed"
        first: Entry | None = None
        for device in insp.devices:  # sealed on every device, so each chain says when the case ended
            if insp.run_of(device)[1] is not None:
                continue  # ended on an earlier try
            result = self._request("inspection.end", {"case": insp.case, "outcome": outcome,
                                                      **({"note": note} if note else {})}, device)
            seq = int(result["seq"])
            insp.runs.setdefault(device, {"start_seq": insp.run_of(device)[0]})["end_seq"] = seq
            if device == insp.device:
                insp.end_seq, insp.ended_at, insp.outcome = seq, now_iso(), outcome
            entry = self._add(Entry(at=now_iso(), kind="end", seq=seq, label=outcome, note=note, device=device,
                                    record_hash=result.get("record_hash"), officer=self.officer))
            first = first or entry
        insp.state = "ended"
        self.store.save(insp)
        return first or next(e for e in insp.entries if e.kind == "end")

    # -- what the evidence says ------------------------------------------------------------------
    def items_by_device(self, evidence_root: Path) -> dict[str, list[ev.Item]]:
        """Each device's items of this case (its own run of its own chain), in seq order."""
        out: dict[str, list[ev.Item]] = {}
        for device in self.inspection.devices:
            first, last = self.inspection.run_of(device)
            out[device] = [] if first is None else ev.load_items(ev.device_dir_of(evidence_root, device), first, last)
        return out

    def items(self, evidence_root: Path) -> list[ev.Item]:
        """Every device's items of this case, merged in capture-time order (``Item.device`` says whose)."""
        return ev.merged(self.items_by_device(evidence_root))

    def alerts(self, evidence_root: Path) -> list[dict[str, Any]]:
        return ev.alerts_of(self.items_by_device(evidence_root))

    def require_ended(self) -> None:
        """A report covers a whole case: building one before ``inspection_end`` is refused (409 in the console)."""
        if self.inspection.state not in ("ended", "reported"):
            raise CommandError(f"inspection {self.inspection.case} is {self.inspection.state}: end the inspection "
                               "before building its report")

    def stills(self, items: list[ev.Item]) -> list[dict[str, Any]]:
        """The stills among ``items`` (``items()``) as the device sealed them (device, seq, label, capture time,
        GPS, whether the media has arrived), with the officer's note when the still was a check-in or a snapshot."""
        insp = self.inspection
        notes = {(e.device or insp.device, e.seq): e for e in insp.entries if e.seq is not None}
        out = []
        for it in items:
            if it.kind != "still":
                continue
            entry = notes.get((it.device, it.seq))
            label = it.extra.get("label")
            out.append({"device": it.device, "seq": it.seq, "label": label if isinstance(label, str) else None,
                        "at": it.wall, "gps": it.record.get("gps"), "time": it.record.get("time"),
                        "received": it.media is not None, "note": entry.note if entry is not None else None,
                        "step": entry.kind if entry is not None else None, **_size(it.extra)})
        return out

    def still(self, evidence_root: Path, seq: int, device: str | None = None) -> tuple[Path, str]:
        """The media file and type of still ``seq`` of ``device`` (the primary by default), only when it
        belongs to this case and has arrived."""
        insp = self.inspection
        device = self.device(device)
        first, last = insp.run_of(device)
        if first is None or seq < first or (last is not None and seq > last):
            raise ConfigError(f"seq {seq} of {device} is not part of inspection {insp.case}")
        found = ev.load_items(ev.device_dir_of(evidence_root, device), seq, seq)
        if not found or found[0].kind != "still":
            raise ConfigError(f"no still with seq {seq} of {device} has been received for inspection {insp.case}")
        media = found[0].record.get("media") or {}
        kind = media.get("type")
        if found[0].media is None or kind not in ev.IMAGE_TYPES:
            raise ConfigError(f"the picture of seq {seq} has not been received (or is not an image)")
        return found[0].media, str(kind)

    def seal_report(self, sha256: str, size: int, items: int) -> dict[str, Any]:
        """Ask the primary device to seal the signed report manifest's hash into its chain."""
        return self._request("inspection.report", {"case": self.inspection.case, "sha256": sha256, "size": size,
                                                   "items": items})


def _resolution(resolution: str) -> dict[str, str]:
    """The snapshot's ``resolution`` argument: sent only when full (a device that predates it accepts the rest)."""
    if resolution not in STILL_RESOLUTIONS:
        raise ConfigError(f"still resolution {resolution!r} is not one of {', '.join(STILL_RESOLUTIONS)}")
    return {"resolution": "full"} if resolution == "full" else {}


def _size(sealed: dict[str, Any]) -> dict[str, Any]:
    """The pixel size and resolution a still's record (or the device's reply) states; only sound values."""
    w, h, res = sealed.get("width"), sealed.get("height"), sealed.get("resolution")
    whole = all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000 for v in (w, h))
    return {"width": w if whole else None, "height": h if whole else None,
            "resolution": res if res in STILL_RESOLUTIONS else "stream"}

"""The run of evidence a signed inspection report covers, and its version: the checks of
``agent.signing.report`` that compare the officer-signed manifest with the device chains in the bundle.

One device: the bundle holds exactly the signed run (``range``: ``inspection_start`` .. ``inspection_end``)
plus the items up to the device's seal of the manifest. Several devices (``evidence-report/3``): the same
rule for each listed device's own chain (``devices[i].range``/``items``); the first listed device seals the
report; every chain in the bundle must be listed, and every record must name the report's site.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["MAX_DEVICES", "Evidence", "ReportCheck", "run", "runs", "version"]

MAX_DEVICES: Final = 8
_WHERE: Final = "report/manifest.json"


@dataclass
class ReportCheck:
    """What the check found; ``problems`` are (where, what) pairs, ``untrusted`` (where, why)."""

    case: str | None = None
    officer: str | None = None
    officer_key_id: str | None = None
    signature_valid: bool = False
    officer_trusted: bool = False
    officer_issuer: str | None = None
    manifest_sha256: str | None = None
    items_listed: int = 0
    items_present: int = 0
    run: dict[str, int] = field(default_factory=dict)
    runs: dict[str, dict[str, int]] = field(default_factory=dict)  # several devices: each one's signed run
    files: dict[str, bool] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    untrusted: list[tuple[str, str]] = field(default_factory=list)
    sealed_at_seq: int | None = None
    version: int | None = None
    supersedes: str | None = None
    reason: str | None = None
    superseded_sealed_at_seq: int | None = None

    def problem(self, where: str, what: str) -> None:
        self.problems.append((where, what))

    def summary(self) -> dict[str, Any]:
        return {"case": self.case, "officer": self.officer, "officer_key_id": self.officer_key_id,
                "signature_valid": self.signature_valid, "officer_trusted": self.officer_trusted,
                "officer_issuer": self.officer_issuer, "manifest_sha256": self.manifest_sha256,
                "items_listed": self.items_listed, "items_present": self.items_present, "run": self.run,
                **({"runs": self.runs} if self.runs else {}),
                "files": self.files, "sealed_at_seq": self.sealed_at_seq, "version": self.version,
                "supersedes": self.supersedes, "reason": self.reason,
                "superseded_sealed_at_seq": self.superseded_sealed_at_seq}


@dataclass(frozen=True)
class Evidence:
    """What the report is checked against: the good records in seq order, the device key, file access."""

    records: Mapping[int, tuple[str, dict[str, Any]]]  # seq -> (record hash, record)
    device_key_id: str | None
    file_names: Sequence[str]  # the names under report/ (relative to it)
    hash_file: Callable[[str, int], tuple[str, int] | None]  # name, size limit -> (sha256, size) or None
    chains: Mapping[str, Mapping[int, tuple[str, dict[str, Any]]]] | None = None  # several devices: by device id
    key_ids: Mapping[str, str | None] = field(default_factory=dict)  # several devices: each one's key id


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None



def run(body: Mapping[str, Any], ev: Evidence, out: ReportCheck, manifest_size: int) -> None:
    """The evidence holds exactly the signed run, then the items up to the device's seal of this manifest."""
    out.run = _one_run(body, str(body.get("case")), ev.records, out, manifest_size, seal=True, who="") or {}


def runs(body: Mapping[str, Any], ev: Evidence, out: ReportCheck, manifest_size: int) -> None:
    """Several devices: each listed device's chain holds exactly its signed run (the first device, which seals
    the report, also the items up to its seal); every chain in the bundle is listed, each once; every record
    names the case's site."""
    chains = ev.chains or {}
    entries = body.get("devices")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_DEVICES:
        out.problem(_WHERE, f"a several-device report must list 1 to {MAX_DEVICES} devices")
        return
    case, site = str(body.get("case")), body.get("site_id")
    named: list[str] = []
    for n, entry in enumerate(entries):
        device = entry.get("device_id") if isinstance(entry, dict) else None
        if not isinstance(device, str) or device in named:
            out.problem(_WHERE, f"malformed or duplicate device entry {str(entry)[:80]}")
            continue
        named.append(device)
        who = f"{device[:70]}: "
        records = chains.get(device)
        if records is None:
            out.problem(f"{device[:70]}", "listed in the signed report but its evidence is not in the bundle")
            continue
        wrong_site = sorted(seq for seq, (_h, rec) in records.items() if rec.get("site_id") != site)
        if wrong_site:
            out.problem(f"{who}seq {wrong_site[0]}", f"{len(wrong_site)} record(s) of another site than the "
                                                     f"report's {str(site)[:70]!r} (a device of another site)")
        got = _one_run(entry, case, records, out, manifest_size, seal=n == 0, who=who)
        if got is not None:
            out.runs[device] = got
    if body.get("device_id") != (named[0] if named else None):
        out.problem(_WHERE, "device_id must be the first listed device (the one that seals the report)")
    for device in sorted(set(chains) - set(named)):
        out.problem(f"{device[:70]}", "evidence of a device the signed report does not list (added)")


def _one_run(spec: Mapping[str, Any], case: str, records: Mapping[int, tuple[str, dict[str, Any]]],
             out: ReportCheck, manifest_size: int, *, seal: bool, who: str) -> dict[str, int] | None:
    """One device's signed run (``spec``: its ``range`` and ``items``) against its records: exactly the run,
    then (``seal``) the items up to the device's seal of this manifest. ``who`` prefixes every finding."""
    raw_range = spec.get("range")
    rng: dict[str, Any] = raw_range if isinstance(raw_range, dict) else {}
    first, last, count = _int(rng.get("first_seq")), _int(rng.get("last_seq")), _int(rng.get("count"))
    if first is None or last is None or count is None or last < first or count != last - first + 1:
        out.problem(who + _WHERE, f"the signed range is malformed ({json.dumps(rng)[:200]})")
        return None
    listed: dict[int, dict[str, Any]] = {}
    for entry in spec.get("items") or []:
        seq = _int(entry.get("seq")) if isinstance(entry, dict) else None
        if seq is None or not first <= seq <= last or seq in listed:
            out.problem(who + _WHERE, f"malformed or duplicate item entry {str(entry)[:80]}")
            continue
        listed[seq] = entry
    out.items_listed += len(listed)
    for seq in range(first, last + 1):
        entry, found = listed.get(seq), records.get(seq)
        if entry is None:
            out.problem(f"{who}seq {seq}", "inside the report's range but not listed in the signed manifest "
                                           "(the report was made from incomplete evidence)")
        if found is None:
            out.problem(f"{who}seq {seq}", "in the report's signed run but missing from the evidence")
        elif entry is not None and found[0] != entry.get("record_hash"):
            out.problem(f"{who}seq {seq}", "differs from the item the report lists (record replaced)")
        elif entry is not None:
            out.items_present += 1
            media = found[1].get("media") or {}
            if entry.get("media_sha256") not in (None, media.get("sha256")):
                out.problem(f"{who}seq {seq}", "media hash differs from the one the report lists")
    for seq, kind in ((first, "inspection_start"), (last, "inspection_end")):
        rec = (records.get(seq) or ("", {}))[1]
        if rec and (rec.get("kind") != kind or (rec.get("extra") or {}).get("case") != case):
            out.problem(f"{who}seq {seq}", f"the report's run must {'start' if kind.endswith('start') else 'end'} "
                                           f"with the {kind} record of case {case[:80]!r}")
    end = last
    if seal:
        seals = [seq for seq, (_h, rec) in sorted(records.items())
                 if seq > last and rec.get("kind") == "report"
                 and (rec.get("extra") or {}).get("sha256") == out.manifest_sha256]
        if not seals:
            out.problem(who + _WHERE, "no device record seals this report's manifest (the device's seal is "
                                      "required: removed, or the tail of the evidence was dropped)")
        else:
            out.sealed_at_seq = end = seals[0]
            extra = records[seals[0]][1].get("extra") or {}
            if extra.get("case") != case or extra.get("size") != manifest_size:
                out.problem(f"{who}seq {seals[0]}", "the device's seal names another case or manifest size")
    outside = [seq for seq in records if seq < first or seq > end]
    if outside:
        out.problem(f"{who}seq {min(outside)}", f"{len(outside)} item(s) outside the report's run seq "
                                                f"{first}..{end} (a report bundle holds exactly its run"
                                                + (" and the device's seal)" if seal else ")"))
    return {"first_seq": first, "last_seq": last, "count": count}


def version(body: Mapping[str, Any], ev: Evidence, out: ReportCheck) -> None:
    """``version``/``supersedes``/``reason``: well formed, and the superseded manifest sealed before this one."""
    version = _int(body.get("version", 1))
    supersedes, reason = body.get("supersedes"), body.get("reason")
    if version is None or not 1 <= version <= 10_000:
        out.problem(_WHERE, f"malformed report version {str(body.get('version'))[:40]!r}")
        return
    if version == 1 and supersedes is not None:
        out.problem(_WHERE, "version 1 of a report cannot supersede another")
        return
    if version > 1 and not (isinstance(supersedes, str) and len(supersedes) == 64
                            and all(c in "0123456789abcdef" for c in supersedes)):
        out.problem(_WHERE, f"report version {version} must name the SHA-256 of the manifest it supersedes")
        return
    if reason is not None and not isinstance(reason, str):
        out.problem(_WHERE, "malformed reason for the new report version")
        return
    if version > 1 and not (isinstance(reason, str) and reason.strip()):
        out.problem(_WHERE, f"report version {version} does not say why it was built again")
    out.version, out.supersedes, out.reason = version, supersedes, (reason[:2000] if reason else None)
    if supersedes is None:
        return
    end = out.sealed_at_seq if out.sealed_at_seq is not None else max(ev.records, default=0) + 1
    earlier = [seq for seq, (_h, rec) in sorted(ev.records.items()) if seq < end and rec.get("kind") == "report"
               and (rec.get("extra") or {}).get("sha256") == supersedes]
    if earlier:
        out.superseded_sealed_at_seq = earlier[0]
    else:
        out.warnings.append((_WHERE, f"supersedes manifest {supersedes[:16]}…, which the device did not seal "
                                     "before this version (an unsealed draft, or the evidence is incomplete)"))



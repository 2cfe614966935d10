"""Offline verification of evidence: needs only the files (and, optionally, a trusted CA).

Checks media hashes, signatures, certificates, sequence continuity, chain links, duplicates and
restart records; extra checkers (anchors, video) plug in through ``checkers``. ``verify`` raises
VerificationError listing every problem; ``check`` returns the full report for display.

The work is split by job: agent.signing.sources (reading, bounded), agent.signing.walk (listing a folder),
agent.signing.record_checks (each record; chains through agent.signing.chains, once per distinct chain),
agent.signing.sequence_checks (across records) and agent.signing.verify_report (what comes out); a bundle of
several devices (agent.signing.device_views) is checked chain by chain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509

from agent.core.errors import VerificationError
from agent.signing.device_views import DEVICES_DIR, MAX_DEVICE_FOLDERS, DeviceView, device_folders, stray_members
from agent.signing.record_checks import check_media, evicted, load_items
from agent.signing.report import REPORT_DIR
from agent.signing.sequence_checks import check_restarts, check_sequence, check_unsealed
from agent.signing.sources import ZIP_ERRORS, EvidenceSource, open_source
from agent.signing.verify_report import CheckedItem, Checker, Context, Report, where

__all__ = ["CheckedItem", "Checker", "Context", "Report", "check", "verify"]


def _guarded(report: Report, where: str, step: Callable[[], None]) -> None:
    """Run one stage; a hostile input that still trips it becomes a named problem, never a traceback."""
    try:
        step()
    except VerificationError as exc:
        report.problem(where, str(exc))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
            UnicodeError, *ZIP_ERRORS) as exc:
        report.problem(where, f"could not be checked: malformed input ({type(exc).__name__}: {str(exc)[:200]})")


def check(path: Path, *, trusted_ca: Sequence[x509.Certificate] = (),
          checkers: Sequence[Checker] = (), progress: Callable[[int, int], None] | None = None) -> Report:
    """Run every check and return the report (never raises for bad evidence, only for bad paths).

    ``progress(done, total)`` hears of each item whose media was checked (the slow part: hashing). A bundle
    with ``devices/<id>/`` folders (a several-camera inspection) has each device's chain checked on its own.
    """
    src = open_source(Path(path))
    report = Report(path=str(path), mode=src.mode, trusted_ca=bool(trusted_ca))
    try:
        devices, bad = device_folders(src) if src.mode == "bundle" else ([], [])
        if devices or bad:
            _check_devices(src, devices, bad, report, trusted_ca, checkers, progress)
        else:
            items = _check_chain(src, report, str(path), trusted_ca, progress)
            _run_checkers(Context(src, items, report), checkers)
        for where_, why in src.refused:  # refused before reading, by the sources or a checker's reads
            report.problem(where_, why)
    finally:
        src.close()
    return report


def _check_chain(src: EvidenceSource, report: Report, name: str, trusted_ca: Sequence[x509.Certificate],
                 progress: Callable[[int, int], None] | None) -> list[CheckedItem]:
    """Every check of one device's chain; the good items in seq order."""
    entries: list[tuple[str, str]] = []  # (name, folder) of every sidecar read
    items: list[CheckedItem] = []

    def load() -> None:
        items.extend(load_items(src, src.iter_entries(), report, list(trusted_ca), entries))

    _guarded(report, name, load)
    gone = evicted(items)
    for done, it in enumerate(items, 1):
        _guarded(report, where(it), lambda it=it: check_media(src, it, report, gone))  # type: ignore[misc]
        if progress is not None:
            progress(done, len(items))
    if src.mode != "single":
        _guarded(report, name, lambda: check_unsealed(src, entries, items, report))
    _guarded(report, "sequence", lambda: check_sequence(src, items, report))
    _guarded(report, "restart records", lambda: check_restarts(src, items, report))
    items.sort(key=lambda i: i.seq)
    report.items = len(items)
    if items:
        report.first_seq, report.last_seq = items[0].seq, items[-1].seq
        report.first_time = str(items[0].record["captured"].get("wall"))
        report.last_time = str(items[-1].record["captured"].get("wall"))
        report.device_id = str(items[0].record.get("device_id"))
        report.key_id = items[0].signed.key_id
        report.kinds = dict(Counter(str(i.record.get("kind")) for i in items))
    elif not report.problems and not src.refused:
        report.problem(name, "no evidence records found")
    return items


def _run_checkers(ctx: Context, checkers: Sequence[Checker]) -> None:
    for checker in checkers:
        name = getattr(checker, "__qualname__", "checker").split(".")[0]
        _guarded(ctx.report, name.replace("_checker", "").replace("_", " "), lambda c=checker: c(ctx))  # type: ignore[misc]


def _check_devices(src: EvidenceSource, devices: list[str], bad: list[str], report: Report,
                   trusted_ca: Sequence[x509.Certificate], checkers: Sequence[Checker],
                   progress: Callable[[int, int], None] | None) -> None:
    """A several-device bundle: each ``devices/<id>/`` checked as a chain of its own (problems named with the
    device), every record in it sealed by that device; then the checkers that need all chains (the report)."""
    for folder in bad:
        report.problem(f"{DEVICES_DIR}/{folder[:80]}", "not a device id: a several-device bundle holds only "
                                                       f"{DEVICES_DIR}/<device id>/ folders")
    if len(devices) > MAX_DEVICE_FOLDERS:
        report.problem(DEVICES_DIR, f"{len(devices)} device folders; a case names at most {MAX_DEVICE_FOLDERS}")
        devices = devices[:MAX_DEVICE_FOLDERS]
    for name in stray_members(src, REPORT_DIR):
        report.problem(name[:200], f"outside {DEVICES_DIR}/<device id>/ and {REPORT_DIR}/ (not part of the bundle)")
    chains: dict[str, list[CheckedItem]] = {}
    sections: dict[str, Any] = {}
    report.trusted = bool(trusted_ca) and bool(devices)
    for device in devices:
        view = DeviceView(src, device)
        sub = Report(path=f"{report.path}:{view.prefix}", mode=src.mode, trusted_ca=bool(trusted_ca))
        items = _check_chain(view, sub, view.prefix, trusted_ca, progress)
        for it in items:
            if it.record.get("device_id") != device:
                sub.problem(where(it), f"sealed by device {str(it.record.get('device_id'))[:70]!r}, not by "
                                       f"{device!r} whose folder holds it (records moved between devices)")
        _run_checkers(Context(view, items, sub), [c for c in checkers if not getattr(c, "all_chains", False)])
        for p in sub.problems:
            report.problem(f"{device}: {p['item']}", p["problem"])
        for w in sub.warnings:
            report.warn(f"{device}: {w['item']}", w["warning"])
        for u in sub.untrusted:
            report.distrust(f"{device}: {u['item']}", u["why"])
        for name, why in view.refused:
            report.problem(name, why)
        report.trusted = report.trusted and sub.trusted
        report.issuer = report.issuer or sub.issuer
        report.items += sub.items
        for k, n in sub.kinds.items():
            report.kinds[k] = report.kinds.get(k, 0) + n
        chains[device] = items
        sections[device] = {"ok": sub.ok, "items": sub.items, "first_seq": sub.first_seq, "last_seq": sub.last_seq,
                            "first_time": sub.first_time, "last_time": sub.last_time, "key_id": sub.key_id,
                            "trusted": sub.trusted, "issuer": sub.issuer, "kinds": sub.kinds,
                            "problems": len(sub.problems), **sub.sections}
    report.device_id = ", ".join(devices) or None  # each device's key and range: sections["devices"]
    report.sections["devices"] = sections
    _run_checkers(Context(src, [], report, chains), [c for c in checkers if getattr(c, "all_chains", False)])


def verify(path: Path, *, trusted_ca: Sequence[x509.Certificate] = (),
           checkers: Sequence[Checker] = ()) -> Report:
    """Like ``check`` but raises VerificationError when anything is wrong."""
    report = check(path, trusted_ca=trusted_ca, checkers=checkers)
    if not report.ok:
        raise VerificationError(f"{path}: {len(report.problems)} problem(s) found",
                                [f"{p['item']}: {p['problem']}" for p in report.problems])
    return report

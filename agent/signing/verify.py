"""Offline verification of evidence: needs only the files (and, optionally, a trusted CA).

Checks media hashes, signatures, certificates, sequence continuity, chain links, duplicates and
restart records; extra checkers (anchors, video) plug in through ``checkers``. ``verify`` raises
VerificationError listing every problem; ``check`` returns the full report for display.

The work is split by job: agent.signing.sources (reading, bounded), agent.signing.walk (listing a folder),
agent.signing.record_checks (each record; chains through agent.signing.chains, once per distinct chain),
agent.signing.sequence_checks (across records) and agent.signing.verify_report (what comes out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509

from agent.core.errors import VerificationError
from agent.signing.record_checks import check_media, evicted, load_items
from agent.signing.sequence_checks import check_restarts, check_sequence, check_unsealed
from agent.signing.sources import ZIP_ERRORS, open_source
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

    ``progress(done, total)`` hears of each item whose media was checked (the slow part: hashing).
    """
    src = open_source(Path(path))
    report = Report(path=str(path), mode=src.mode, trusted_ca=bool(trusted_ca))
    try:
        entries: list[tuple[str, str]] = []  # (name, folder) of every sidecar read
        items: list[CheckedItem] = []

        def load() -> None:
            items.extend(load_items(src, src.iter_entries(), report, list(trusted_ca), entries))

        _guarded(report, str(path), load)
        gone = evicted(items)
        for done, it in enumerate(items, 1):
            _guarded(report, where(it), lambda it=it: check_media(src, it, report, gone))  # type: ignore[misc]
            if progress is not None:
                progress(done, len(items))
        if src.mode != "single":
            _guarded(report, str(path), lambda: check_unsealed(src, entries, items, report))
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
            report.problem(str(path), "no evidence records found")
        ctx = Context(src, items, report)
        for checker in checkers:
            name = getattr(checker, "__qualname__", "checker").split(".")[0]
            _guarded(report, name.replace("_checker", "").replace("_", " "), lambda c=checker: c(ctx))  # type: ignore[misc]
        for where_, why in src.refused:  # refused before reading, by the sources or a checker's reads
            report.problem(where_, why)
    finally:
        src.close()
    return report


def verify(path: Path, *, trusted_ca: Sequence[x509.Certificate] = (),
           checkers: Sequence[Checker] = ()) -> Report:
    """Like ``check`` but raises VerificationError when anything is wrong."""
    report = check(path, trusted_ca=trusted_ca, checkers=checkers)
    if not report.ok:
        raise VerificationError(f"{path}: {len(report.problems)} problem(s) found",
                                [f"{p['item']}: {p['problem']}" for p in report.problems])
    return report

"""Checks across records: sequence continuity, chain links, one device, sealing order, restarts, unsealed media."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.signing.records import GENESIS_PREV
from agent.signing.sources import EvidenceSource
from agent.signing.verify_report import CheckedItem, Report, where

__all__ = ["check_restarts", "check_sequence", "check_unsealed"]


def check_sequence(src: EvidenceSource, items: list[CheckedItem], report: Report) -> None:
    by_seq: dict[int, list[CheckedItem]] = {}
    for it in items:
        by_seq.setdefault(it.seq, []).append(it)
    for seq, group in by_seq.items():
        if len(group) > 1:
            same = len({g.signed.hash for g in group}) == 1
            report.problem(f"seq {seq}", ("duplicated item: " if same else "two different records claim this "
                                          "sequence number: ") + ", ".join(g.name for g in group))
    ids = Counter(str(it.record.get("device_id")) for it in items)
    if len(ids) > 1:
        main = ids.most_common(1)[0][0]
        for it in items:
            if it.record.get("device_id") != main:
                report.problem(where(it), f"belongs to device {it.record.get('device_id')!r}, not {main!r}")
    if src.mode == "single" or not items:
        return
    seqs = sorted(by_seq)
    first = seqs[0]
    if src.mode == "bundle":
        # MANIFEST.json is unsigned: it can show tampering (it disagrees with the items) but never vouches
        # for where the bundle starts; only a signed statement (an inspection report's manifest) does.
        declared = (src.manifest or {}).get("first_seq", first)
        if not isinstance(declared, int) or isinstance(declared, bool):
            report.problem("MANIFEST.json", f"first_seq {str(declared)[:40]!r} is not an integer")
        elif declared != first:
            report.problem(f"seq {min(declared, first)}", f"MANIFEST.json says the bundle starts at seq {declared} "
                                                          f"but its first item is seq {first} (items missing)")
    elif first != 0:
        report.problem("seq 0", f"items before seq {first} are missing")
    for a, b in itertools.pairwise(seqs):
        if b != a + 1:
            report.problem(f"seq {a + 1}", f"missing item(s): seq {a + 1}" + (f"..{b - 1}" if b - 1 > a + 1 else "")
                           + " deleted or never delivered")
    prev: CheckedItem | None = None
    for seq in seqs:
        cur = by_seq[seq][0]
        if seq == 0:
            if cur.record.get("prev") != GENESIS_PREV:
                report.problem(where(cur), "first record does not start the chain")
            if cur.record.get("kind") != "restart":
                report.problem(where(cur), "first record is not a restart record")
        elif prev is not None and prev.seq == seq - 1 and cur.record.get("prev") != prev.signed.hash:
            report.problem(where(cur), f"chain broken: does not link to seq {prev.seq} (reordered or replaced)")
        if prev is not None and cur.record.get("kind") != "restart":
            _check_time(prev, cur, report)
        prev = cur


def _check_time(prev: CheckedItem, cur: CheckedItem, report: Report) -> None:
    """Within one boot the sealing clock only moves forward; capture times may interleave (queues)."""
    a, b = prev.record["captured"], cur.record["captured"]
    if a.get("boot_id") != b.get("boot_id"):
        report.problem(where(cur), "boot changed without a restart record")
        return
    sa, sb = prev.record.get("sealed"), cur.record.get("sealed")
    if not isinstance(sa, dict) or not isinstance(sb, dict):
        report.problem(where(cur), "record has no sealing time")
    elif int(sb["mono_us"]) < int(sa["mono_us"]):
        report.problem(where(cur), "sealed before the previous item on the monotonic clock (reordered)")
    elif int(sb["wall_us"]) + 1_000_000 < int(sa["wall_us"]):
        report.warn(where(cur), "wall clock stepped back by more than 1 s since the previous record")


def check_restarts(src: EvidenceSource, items: list[CheckedItem], report: Report) -> None:
    cert_hash = None
    if src.device_cert is not None:
        try:
            der = x509.load_pem_x509_certificate(src.device_cert).public_bytes(serialization.Encoding.DER)
            cert_hash = hashlib.sha256(der).hexdigest()
        except ValueError:
            pass
    for it in items:
        if it.record.get("kind") != "restart":
            continue
        extra = it.record.get("extra") or {}
        if cert_hash is not None and extra.get("cert_sha256") != cert_hash:
            report.problem(where(it), "device certificate in this evidence is not the one the device recorded")
        prev = extra.get("previous")
        if prev and prev.get("seq") != it.seq - 1:
            report.problem(where(it), "restart record names the wrong previous item")
        if extra.get("orphans"):
            report.warn(where(it), f"{len(extra['orphans'])} unsealed partial file(s) from a crash kept in orphans/")


def check_unsealed(src: EvidenceSource, seen: list[tuple[str, str]], items: list[CheckedItem],
                   report: Report) -> None:
    """A media file that no good record names was never sealed here (or was injected); ``seen`` holds the
    (name, folder) of every sidecar read."""
    covered = {(it.folder, (it.record.get("media") or {}).get("name")) for it in items}
    good = {it.name for it in items}
    broken = {(folder, name.rsplit("/", 1)[-1].rsplit(".", 1)[0]) for name, folder in seen if name not in good}
    for folder, name in src.media_files():
        if (folder, name) not in covered and (folder, name.rsplit(".", 1)[0]) not in broken:
            report.problem(name, "media file has no sealed record (unsealed or injected)")

"""Offline verification of evidence: needs only the files (and, optionally, a trusted CA).

Checks media hashes, signatures, certificates, sequence continuity, chain links, duplicates and
restart records; extra checkers (anchors, video) plug in through ``checkers``. ``verify`` raises
VerificationError listing every problem; ``check`` returns the full report for display.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.signing.keys import key_id_of
from agent.signing.layout import ITEM_RE
from agent.signing.records import GENESIS_PREV, SignedRecord, parse_sidecar
from agent.signing.sources import ZIP_ERRORS, Entry, EvidenceSource, open_source, plain_name
from agent.signing.trust import verify_chain, verify_signature


@dataclass(frozen=True)
class CheckedItem:
    """A record that parsed and whose signature held (only these enter the sequence checks)."""

    name: str
    folder: str
    signed: SignedRecord
    record: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.record["seq"])


@dataclass
class Report:
    path: str
    mode: str = "files"
    items: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    device_id: str | None = None
    key_id: str | None = None
    trusted_ca: bool = False
    trusted: bool = False  # every record's chain leads to a CA the caller supplied
    untrusted: list[dict[str, str]] = field(default_factory=list)  # other parts nobody vouched for (a report)
    issuer: str | None = None  # subject of the CA the chains end at
    first_seq: int | None = None
    last_seq: int | None = None
    kinds: dict[str, int] = field(default_factory=dict)
    first_time: str | None = None
    last_time: str | None = None
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, where: str, what: str) -> None:
        self.problems.append({"item": where, "problem": what})

    def warn(self, where: str, what: str) -> None:
        self.warnings.append({"item": where, "warning": what})

    def distrust(self, where: str, why: str) -> None:
        """A part that is intact but that no trust anchor the caller gave vouches for (exit 3, not 1)."""
        self.untrusted.append({"item": where, "why": why})

    @property
    def fully_trusted(self) -> bool:
        """Every record's chain and every other signed part lead to an anchor the caller supplied."""
        return self.trusted and not self.untrusted

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "path": self.path, "mode": self.mode, "items": self.items,
                "device_id": self.device_id, "key_id": self.key_id, "trusted_ca": self.trusted_ca,
                "trusted": self.fully_trusted, "devices_trusted": self.trusted, "untrusted": self.untrusted,
                "issuer": self.issuer,
                "first_seq": self.first_seq, "last_seq": self.last_seq, "kinds": self.kinds,
                "first_time": self.first_time, "last_time": self.last_time,
                "problems": self.problems, "warnings": self.warnings, **self.sections}


@dataclass
class Context:
    """What checkers see: the source, every good item in sequence order, and the report to add to."""

    source: EvidenceSource
    items: list[CheckedItem]
    report: Report


Checker = Callable[[Context], None]


def _where(item: CheckedItem) -> str:
    return f"seq {item.seq} ({item.name})"


def _check_signature(name: str, signed: SignedRecord, report: Report) -> bool:
    record = signed.record
    if record.get("key_id") != signed.key_id:
        report.problem(name, "envelope key id differs from the record's key id")
        return False
    if not signed.x5c:
        report.problem(name, "no signing certificate in the envelope")
        return False
    try:
        certs = signed.certificates()
        pub = certs[0].public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:  # a garbled certificate or key
        report.problem(name, f"signing certificate unreadable: {exc}")
        return False
    if not isinstance(pub, ec.EllipticCurvePublicKey) or key_id_of(pub) != signed.key_id:
        report.problem(name, "signing certificate does not hold the record's key")
        return False
    try:
        verify_signature(certs[0], signed.sig, signed.body)
    except VerificationError:
        report.problem(name, "signature is invalid (record altered or signed by another key)")
        return False
    return True


def _check_chain(name: str, signed: SignedRecord, trusted: list[x509.Certificate],
                 when: dt.datetime, report: Report) -> bool:
    """The one chain check (agent.signing.trust); True when the chain leads to a supplied CA."""
    try:
        result = verify_chain(signed.certificates(), trusted, at=when,
                              device=str(signed.record.get("device_id")))
    except VerificationError as exc:
        report.problem(name, str(exc))
        return False
    if report.issuer is None:
        report.issuer = result.issuer
    return result.trusted


def _evicted(items: list[CheckedItem]) -> dict[int, int]:
    """seq -> seq of the signed ``media_evicted`` record that says its media was removed on purpose."""
    out: dict[int, int] = {}
    for it in items:
        extra = it.record.get("extra") or {}
        if it.record.get("kind") == "event" and extra.get("type") == "media_evicted":
            for gone in extra.get("items") or []:
                if isinstance(gone, dict) and isinstance(gone.get("seq"), int) and gone["seq"] < it.seq:
                    out[gone["seq"]] = it.seq
    return out


def _check_media(src: EvidenceSource, item: CheckedItem, report: Report, evicted: dict[int, int]) -> None:
    media = item.record.get("media")
    if not media:
        return
    with src.open_media(item.folder, str(media.get("name"))) as fh:
        if fh is None:
            if item.seq in evicted:
                report.warn(_where(item), f"media evicted by quota after delivery and anchoring "
                                          f"(sealed at seq {evicted[item.seq]})")
            else:
                report.problem(_where(item), f"media file {media.get('name')} is missing")
            return
        h = hashlib.sha256()
        size = 0
        try:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
        except ZIP_ERRORS as exc:  # a damaged bundle member (bad CRC, truncated deflate stream)
            report.problem(_where(item), f"media {media.get('name')} unreadable: {exc}")
            return
    if size != media.get("size") or h.hexdigest() != media.get("sha256"):
        report.problem(_where(item), f"media {media.get('name')} does not match its record "
                                     f"(sha256/size differ: file altered or replaced)")


def _load(src: EvidenceSource, entries: Iterable[Entry], report: Report,
          trusted: list[x509.Certificate], seen: list[Entry]) -> list[CheckedItem]:
    """Check each sidecar as the source yields it; only its name is kept (``seen``), never its bytes."""
    device_key_id = None
    if src.device_cert is not None:
        try:
            cert = x509.load_pem_x509_certificate(src.device_cert)
            device_key_id = key_id_of(cert.public_key())  # type: ignore[arg-type]
        except ValueError as exc:
            report.problem("device/cert.pem", f"device certificate unreadable: {exc}")
    items: list[CheckedItem] = []
    untrusted = 0
    for entry in entries:
        seen.append(Entry(entry.name, entry.folder, b""))
        try:
            signed = parse_sidecar(entry.sidecar, entry.name)
        except VerificationError as exc:
            report.problem(entry.name, str(exc))
            continue
        if not _check_signature(entry.name, signed, report):
            continue
        rec = signed.record
        shape = _shape_problem(rec)
        if shape:
            report.problem(entry.name, shape)
            continue
        fname = entry.name.rsplit("/", 1)[-1]
        m = ITEM_RE.match(fname)
        if not m or int(m.group(1)) != rec.get("seq") or m.group(2) != rec.get("kind"):
            report.problem(entry.name, f"file name does not match the record (record says seq {rec.get('seq')} "
                                       f"{rec.get('kind')}): items renamed, swapped or moved")
        if device_key_id is not None and signed.key_id != device_key_id:
            report.problem(entry.name, f"signed by key {signed.key_id[:16]}…, not this device's key "
                                       f"{device_key_id[:16]}… (foreign item or replaced certificate)")
        when = _captured_at(rec)
        if when is None:
            report.problem(entry.name, "record has no readable capture time (captured.wall_us)")
            continue
        if not _check_chain(entry.name, signed, trusted, when, report):
            untrusted += 1
        items.append(CheckedItem(entry.name, entry.folder, signed, rec))
    report.trusted = bool(trusted) and bool(items) and untrusted == 0
    return items


def _shape_problem(rec: dict[str, Any]) -> str | None:
    """What the later checks rely on, checked once: a validly signed record can still be malformed."""
    seq, kind, media = rec.get("seq"), rec.get("kind"), rec.get("media")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return f"record seq {str(seq)[:40]!r} is not a non-negative integer"
    if not isinstance(kind, str) or not isinstance(rec.get("captured"), dict):
        return "record has no kind or no capture block"
    if rec.get("extra") is not None and not isinstance(rec.get("extra"), dict):
        return "record extra is not an object"
    if media is not None and media != {}:
        if not isinstance(media, dict) or not isinstance(media.get("name"), str):
            return "record media is not an object with a name"
        if not plain_name(media["name"]) or not media["name"].startswith(f"{seq:012d}.{kind}."):
            return f"media name {media['name'][:80]!r} is not this item's name (path-like names refused)"
    return None


def _captured_at(rec: dict[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(rec["captured"]["wall_us"]) / 1e6, dt.UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def _check_sequence(src: EvidenceSource, items: list[CheckedItem], report: Report) -> None:
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
                report.problem(_where(it), f"belongs to device {it.record.get('device_id')!r}, not {main!r}")
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
                report.problem(_where(cur), "first record does not start the chain")
            if cur.record.get("kind") != "restart":
                report.problem(_where(cur), "first record is not a restart record")
        elif prev is not None and prev.seq == seq - 1 and cur.record.get("prev") != prev.signed.hash:
            report.problem(_where(cur), f"chain broken: does not link to seq {prev.seq} (reordered or replaced)")
        if prev is not None and cur.record.get("kind") != "restart":
            _check_time(prev, cur, report)
        prev = cur


def _check_time(prev: CheckedItem, cur: CheckedItem, report: Report) -> None:
    """Within one boot the sealing clock only moves forward; capture times may interleave (queues)."""
    a, b = prev.record["captured"], cur.record["captured"]
    if a.get("boot_id") != b.get("boot_id"):
        report.problem(_where(cur), "boot changed without a restart record")
        return
    sa, sb = prev.record.get("sealed"), cur.record.get("sealed")
    if not isinstance(sa, dict) or not isinstance(sb, dict):
        report.problem(_where(cur), "record has no sealing time")
    elif int(sb["mono_us"]) < int(sa["mono_us"]):
        report.problem(_where(cur), "sealed before the previous item on the monotonic clock (reordered)")
    elif int(sb["wall_us"]) + 1_000_000 < int(sa["wall_us"]):
        report.warn(_where(cur), "wall clock stepped back by more than 1 s since the previous record")


def _check_restarts(src: EvidenceSource, items: list[CheckedItem], report: Report) -> None:
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
            report.problem(_where(it), "device certificate in this evidence is not the one the device recorded")
        prev = extra.get("previous")
        if prev and prev.get("seq") != it.seq - 1:
            report.problem(_where(it), "restart record names the wrong previous item")
        if extra.get("orphans"):
            report.warn(_where(it), f"{len(extra['orphans'])} unsealed partial file(s) from a crash kept in orphans/")


def _check_unsealed(src: EvidenceSource, entries: list[Entry], items: list[CheckedItem], report: Report) -> None:
    """A media file that no good record names was never sealed here (or was injected)."""
    covered = {(it.folder, (it.record.get("media") or {}).get("name")) for it in items}
    good = {it.name for it in items}
    broken = {(e.folder, e.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]) for e in entries if e.name not in good}
    for folder, name in src.media_files():
        if (folder, name) not in covered and (folder, name.rsplit(".", 1)[0]) not in broken:
            report.problem(name, "media file has no sealed record (unsealed or injected)")


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
        entries: list[Entry] = []
        items: list[CheckedItem] = []

        def load() -> None:
            items.extend(_load(src, src.iter_entries(), report, list(trusted_ca), entries))

        _guarded(report, str(path), load)
        evicted = _evicted(items)
        for done, it in enumerate(items, 1):
            _guarded(report, _where(it), lambda it=it: _check_media(src, it, report, evicted))  # type: ignore[misc]
            if progress is not None:
                progress(done, len(items))
        if src.mode != "single":
            _guarded(report, str(path), lambda: _check_unsealed(src, entries, items, report))
        _guarded(report, "sequence", lambda: _check_sequence(src, items, report))
        _guarded(report, "restart records", lambda: _check_restarts(src, items, report))
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
        for where, why in src.refused:  # refused before reading, by the sources or a checker's reads
            report.problem(where, why)
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

"""Checks of each record on its own: parse, signature, shape, name, certificate chain, and its media's hash.

Each sidecar is checked as the source yields it and only its name is kept afterwards; certificates and
chains go through one ``ChainCache`` per run (agent.signing.chains).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from agent.core.errors import VerificationError
from agent.signing.chains import ChainCache
from agent.signing.keys import key_id_of
from agent.signing.layout import ITEM_RE
from agent.signing.records import SignedRecord, parse_sidecar
from agent.signing.sources import ZIP_ERRORS, Entry, EvidenceSource, plain_name
from agent.signing.verify_report import CheckedItem, Report, where

__all__ = ["captured_at", "check_media", "evicted", "load_items", "shape_problem"]



def _check_signature(name: str, signed: SignedRecord, chains: ChainCache,
                     report: Report) -> tuple[x509.Certificate, ...] | None:
    """The envelope's certificates when the signature holds under the record's key, else None (reported)."""
    if signed.record.get("key_id") != signed.key_id:
        report.problem(name, "envelope key id differs from the record's key id")
        return None
    if not signed.x5c:
        report.problem(name, "no signing certificate in the envelope")
        return None
    try:
        certs = chains.certificates(signed.x5c)
        signer = chains.signer(signed.x5c[0], certs[0])
    except (ValueError, UnsupportedAlgorithm) as exc:  # a garbled certificate or key
        report.problem(name, f"signing certificate unreadable: {exc}")
        return None
    if not signer.key_id or signer.key_id != signed.key_id:
        report.problem(name, "signing certificate does not hold the record's key")
        return None
    try:
        signer.verify(signed.sig, signed.body)
    except VerificationError:
        report.problem(name, "signature is invalid (record altered or signed by another key)")
        return None
    return certs


def _check_chain(name: str, signed: SignedRecord, certs: tuple[x509.Certificate, ...], chains: ChainCache,
                 when: dt.datetime, report: Report) -> bool:
    """The one chain check (agent.signing.trust, through the run's cache); True when it leads to a supplied CA."""
    try:
        result = chains.verify(signed.x5c, certs, at=when, device=str(signed.record.get("device_id")))
    except VerificationError as exc:
        report.problem(name, str(exc))
        return False
    if report.issuer is None:
        report.issuer = result.issuer
    return result.trusted


def load_items(src: EvidenceSource, entries: Iterable[Entry], report: Report,
               trusted: list[x509.Certificate], seen: list[tuple[str, str]]) -> list[CheckedItem]:
    """Check each sidecar as the source yields it; only its (name, folder) is kept (``seen``), never its bytes."""
    device_key_id = None
    if src.device_cert is not None:
        try:
            cert = x509.load_pem_x509_certificate(src.device_cert)
            device_key_id = key_id_of(cert.public_key())  # type: ignore[arg-type]
        except ValueError as exc:
            report.problem("device/cert.pem", f"device certificate unreadable: {exc}")
    chains = ChainCache(trusted)
    items: list[CheckedItem] = []
    untrusted = 0
    for entry in entries:
        seen.append((entry.name, entry.folder))
        try:
            signed = parse_sidecar(entry.sidecar, entry.name)
        except VerificationError as exc:
            report.problem(entry.name, str(exc))
            continue
        certs = _check_signature(entry.name, signed, chains, report)
        if certs is None:
            continue
        rec = signed.record
        shape = shape_problem(rec)
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
        wall_us = rec["captured"].get("wall_us")
        reused = chains.reuse(signed.x5c, wall_us, str(rec.get("device_id"))) if type(wall_us) is int else None
        if reused is None:  # a chain not seen yet, a time outside its window, or an unusual time: checked in full
            when = captured_at(rec)
            if when is None:
                report.problem(entry.name, "record has no readable capture time (captured.wall_us)")
                continue
            if not _check_chain(entry.name, signed, certs, chains, when, report):
                untrusted += 1
        elif not reused.trusted:
            untrusted += 1
        items.append(CheckedItem(entry.name, entry.folder, signed, rec, certs))
    report.trusted = bool(trusted) and bool(items) and untrusted == 0
    return items


def shape_problem(rec: dict[str, Any]) -> str | None:
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


def captured_at(rec: dict[str, Any]) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(rec["captured"]["wall_us"]) / 1e6, dt.UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def evicted(items: list[CheckedItem]) -> dict[int, int]:
    """seq -> seq of the signed ``media_evicted`` record that says its media was removed on purpose."""
    out: dict[int, int] = {}
    for it in items:
        extra = it.record.get("extra") or {}
        if it.record.get("kind") == "event" and extra.get("type") == "media_evicted":
            for gone in extra.get("items") or []:
                if isinstance(gone, dict) and isinstance(gone.get("seq"), int) and gone["seq"] < it.seq:
                    out[gone["seq"]] = it.seq
    return out


def check_media(src: EvidenceSource, item: CheckedItem, report: Report, gone: dict[int, int]) -> None:
    """The media file is there (or evicted by a signed record) and hashes to what its record says."""
    media = item.record.get("media")
    if not media:
        return
    name = str(media.get("name"))
    try:
        found = src.media_digest(item.folder, name)
    except ZIP_ERRORS as exc:  # a damaged bundle member (bad CRC, truncated deflate stream), a failing disk
        report.problem(where(item), f"media {media.get('name')} unreadable: {exc}")
        return
    if found is None:
        if item.seq in gone:
            report.warn(where(item), f"media evicted by quota after delivery and anchoring "
                                     f"(sealed at seq {gone[item.seq]})")
        else:
            report.problem(where(item), f"media file {media.get('name')} is missing")
    elif found[0] != media.get("size") or found[1] != media.get("sha256"):
        report.problem(where(item), f"media {media.get('name')} does not match its record "
                                    f"(sha256/size differ: file altered or replaced)")

"""What ingest accepts from a device: limits, and checks that turn wire values into safe ones.

Nothing a device sends names a path: ingest builds every file name from the device id of the
authenticated topic, a ``seq`` checked here, a ``kind`` checked here and an extension from a fixed set.
A record's ``media.name`` must be exactly the canonical name those give, or the record is refused.
Every check raises :class:`Refused` with the MQTT v5 reason code it maps to.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from agent.core.vocab import AUDIO_EXT, KIND_RE
from agent.signing.layout import item_stem
from agent.wire.chunks import MIN_CHUNK, Chunk

#: Media extensions a device seals (stills, video segments, sensor logs, voice); anything else is refused.
MEDIA_EXTS = frozenset({"jpg", "jpeg", "png", "mp4", "jsonl", "json", "wav", AUDIO_EXT})
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_SEQ = 10**12 - 1  # item names hold 12 digits


class Refused(Exception):
    """A message that cannot be accepted; ``code`` is the MQTT v5 reason it maps to, ``reason`` a counter."""

    def __init__(self, message: str, code: int = 0x99, reason: str = "malformed") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Ingest limits (``evidence-officer ingest --limit NAME=VALUE``); defaults suit a fleet of cameras."""

    max_item_bytes: int = 1 << 30  # one media file (a video segment is tens of MB)
    max_still_bytes: int = 32 << 20  # one still (a full-sensor 4608x2592 JPEG is a few MB)
    max_record_bytes: int = 1 << 20  # one signed record (sidecar), also when it arrives chunked
    max_chunks: int = 65_536  # chunks of one file
    max_json_depth: int = 32
    max_status_bytes: int = 64 << 10
    max_receipt_bytes: int = 1 << 20
    max_receipts: int = 100_000  # receipts kept per device (one per anchored checkpoint; then refused)
    max_receipt_total_bytes: int = 1 << 30  # receipt bytes kept per device (then refused)
    max_orphan_media: int = 256  # complete media without their record per device (then refused)
    max_partial_sets: int = 32  # unfinished chunk sets per device; the oldest is dropped beyond
    partial_max_age_s: float = 7 * 24 * 3600.0  # an unfinished set older than this is dropped
    quarantine_bytes: int = 64 << 20  # payload bytes kept in quarantine per device (then metadata only)
    quarantine_files: int = 2_000  # quarantine entries per device (then counted only)
    max_forks: int = 64  # forked records kept per device (then counted only)

    @classmethod
    def parse(cls, pairs: list[str]) -> Limits:
        """``NAME=VALUE`` strings; ValueError names the bad one."""
        values: dict[str, Any] = {}
        fields = cls.__dataclass_fields__
        for pair in pairs:
            name, _, raw = pair.partition("=")
            name = name.strip().replace("-", "_")
            if name not in fields:
                raise ValueError(f"unknown ingest limit {name!r} (one of {', '.join(sorted(fields))})")
            try:
                value = float(raw) if fields[name].type == "float" else int(raw)
            except ValueError:
                raise ValueError(f"ingest limit {name}={raw!r} is not a number") from None
            if value <= 0:
                raise ValueError(f"ingest limit {name} must be positive")
            values[name] = value
        return cls(**values)


def check_seq(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEQ:
        raise Refused(f"seq {str(value)[:40]!r} is not an integer in 0..{MAX_SEQ}", reason="bad_seq")
    return value


def check_kind(value: Any) -> str:
    if not isinstance(value, str) or not KIND_RE.match(value):
        raise Refused(f"kind {str(value)[:40]!r} is not a plain lowercase name", reason="bad_kind")
    return value


def canonical_media_name(seq: int, kind: str, name: Any) -> str:
    """The only media name ingest will write: ``<seq:012>.<kind>.<ext>`` with a known extension."""
    stem = item_stem(seq, kind)
    if not isinstance(name, str) or not name.startswith(stem + ".") or name[len(stem) + 1:] not in MEDIA_EXTS:
        raise Refused(f"media name {str(name)[:80]!r} is not the canonical {stem}.<{'|'.join(sorted(MEDIA_EXTS))}>",
                      0x87, "bad_media_name")
    return name


def check_media(record: dict[str, Any], seq: int, kind: str, limits: Limits) -> dict[str, Any] | None:
    """The record's media reference, validated; None when the record has no media."""
    media = record.get("media")
    if media is None:
        return None
    if not isinstance(media, dict):
        raise Refused("record media is not an object")
    canonical_media_name(seq, kind, media.get("name"))
    sha, size = media.get("sha256"), media.get("size")
    if not isinstance(sha, str) or not HEX64_RE.match(sha):
        raise Refused("record media sha256 is not a SHA-256 hex digest")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= limits.max_item_bytes:
        raise Refused(f"record media size {str(size)[:40]} is outside 0..{limits.max_item_bytes}", reason="too_large")
    if kind == "still" and size > limits.max_still_bytes:
        raise Refused(f"still of {size} bytes is over the {limits.max_still_bytes}-byte limit for one still "
                      "(max_still_bytes)", 0x95, "too_large")
    return media


def check_chunk(chunk: Chunk, limits: Limits, *, max_size: int) -> None:
    """Chunk metadata against itself: the size, count and offset must describe one evenly cut file."""
    check_seq(chunk.seq)
    check_kind(chunk.kind)
    if chunk.kind == "still":
        max_size = min(max_size, limits.max_still_bytes)
    if not 0 <= chunk.size <= max_size:
        raise Refused(f"declared size {chunk.size} is outside 0..{max_size}", reason="too_large")
    if not 1 <= chunk.total <= limits.max_chunks:
        raise Refused(f"chunk count {chunk.total} is outside 1..{limits.max_chunks}", reason="bad_chunk")
    n, last = len(chunk.data), chunk.index == chunk.total - 1
    if chunk.total == 1:
        ok = chunk.offset == 0 and n == chunk.size
    elif not last:
        ok = (n >= MIN_CHUNK and chunk.offset == chunk.index * n
              and chunk.total == math.ceil(chunk.size / n))
    else:
        step, rest = divmod(chunk.offset, chunk.total - 1)
        ok = (rest == 0 and step >= MIN_CHUNK and 0 < n <= step and chunk.offset + n == chunk.size
              and chunk.total == math.ceil(chunk.size / step))
    if not ok:
        raise Refused(f"chunk {chunk.index}/{chunk.total} ({n} bytes at offset {chunk.offset}) does not cut a "
                      f"{chunk.size}-byte file evenly", reason="bad_chunk")


_JSON_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


def too_deep(data: bytes, limit: int) -> bool:
    """True if the JSON text nests deeper than ``limit`` (or its brackets do not balance), without parsing it.

    Escapes and strings are cut out and only brackets kept, as one kind; each round then removes every
    innermost ``[]`` (``bytes.replace`` does not rescan what it joined), so a text of depth d is empty after
    d rounds. All of it runs at C speed: a byte-by-byte scan in Python cost a second per MiB (measured).
    """
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _JSON_STRING.sub(b"", text).translate(_ONE_KIND, _NOT_BRACKET)
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return True  # no innermost pair left to remove: unbalanced
        brackets = shorter
    return bool(brackets)


def check_json_size(data: bytes, limit_bytes: int, limits: Limits, what: str) -> None:
    if len(data) > limit_bytes:
        raise Refused(f"{what} of {len(data)} bytes is over the limit of {limit_bytes}", reason="too_large")
    if too_deep(data, limits.max_json_depth):
        raise Refused(f"{what} is nested deeper than {limits.max_json_depth} levels (or its brackets do not "
                      "balance)", reason="too_deep")


_WORD = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")


def alert_summary(payload: bytes) -> str:
    """Which event an alert announces ("frozen onset"), from its record; the record itself is verified when it
    arrives on the record topic. Only short plain words from the wire are echoed into the log."""
    try:
        record = json.loads(payload.split(b"\n", 1)[0])
        extra = record.get("extra") or {}
        words = [str(extra.get(k)) for k in ("type", "state", "phase") if extra.get(k) is not None]
    except (ValueError, AttributeError):
        return "(unreadable alert payload)"
    shown = [w if _WORD.match(w) else "?" for w in words[:2]]
    return " ".join(shown) or "(no event type)"

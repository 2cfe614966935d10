"""Reading sealed items back from the vault's files (outbox catch-up after a crash)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from agent.core.model import SealedItem

log = logging.getLogger(__name__)


def sidecar_props(item: SealedItem) -> list[tuple[str, str]]:
    media = item.record.get("media") or {}
    rec = Path(item.record_path)
    return [("item", item.record_hash), ("seq", str(item.seq)), ("kind", item.kind),
            ("path", f"items/{rec.parent.name}/{rec.name}"), ("media", str(media.get("name", ""))),
            ("size", str(media.get("size", 0)))]


def item_from_sidecar(rec: Path) -> SealedItem | None:
    """The SealedItem a sidecar describes; None (logged) when it cannot be read."""
    try:
        body = rec.read_bytes().split(b"\n", 1)[0]
        record = json.loads(body)
        media = record.get("media") or None
        return SealedItem(seq=int(record["seq"]), kind=str(record["kind"]),
                          record_hash=hashlib.sha256(body).hexdigest(), record=record, record_path=str(rec),
                          media_path=None if not media else str(rec.parent / media["name"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("outbox: cannot read %s: %s (not queued; `evidence-agent verify` reports it)", rec, exc)
        return None


def unqueued_items(vault_dir: Path, after_seq: int) -> Iterator[SealedItem]:
    """Sealed items with a sequence number above ``after_seq``, in order."""
    items = vault_dir / "items"
    if not items.is_dir():
        return
    for bucket in sorted(p for p in items.iterdir() if p.is_dir()):
        for rec in sorted(bucket.glob("*.rec")):
            try:
                seq = int(rec.name[:12])
            except ValueError:
                continue
            if seq > after_seq and (item := item_from_sidecar(rec)) is not None:
                yield item

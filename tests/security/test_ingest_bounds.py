"""A compromised device floods the real `evidence-officer ingest` with what used to be kept without bound.

Before: every distinct receipt and every complete media file without a record was stored, without a per-device
bound and without a line in the ingest report. Now both are bounded (``--limit max_receipts``,
``max_orphan_media``), the excess refused with a counted reason, and the report lists what is kept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from agent.wire.mqtt import Inbound
from tests.support.fleet import Fleet
from tests.support.hostile import Device, raw_chunk

RECEIPTS, MAX_RECEIPTS = 30, 10
ORPHANS, MAX_ORPHANS = 12, 4


def test_receipts_and_orphan_media_are_bounded_and_reported(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    evil = Device(tmp_path / "evil", "cam-evil", keys=fleet.key_dir("cam-evil"))
    link = fleet.link("cam-evil", client_id="cam-evil-bounds")
    ingest = fleet.ingest(out, "--limit", f"max_receipts={MAX_RECEIPTS}", "--limit",
                          f"max_orphan_media={MAX_ORPHANS}", idle=10.0, client_id="ingest-bounds")
    try:
        msgs = [Inbound(f"{evil.topic}/receipt", json.dumps({"receipt": i, "pad": "r" * 500}).encode(), 1, False)
                for i in range(RECEIPTS)]
        for i in range(ORPHANS):  # complete one-chunk media whose records never come
            data = b"orphan %d " % i * 50
            msgs.append(raw_chunk(evil, item=f"{i + 1:064x}", seq=i + 1, size=len(data), data=data,
                                  sha256=hashlib.sha256(data).hexdigest()))
        for m in msgs:
            assert link.publish_wait(m.topic, m.payload, user_props=m.user_props, timeout=20).code < 0x80
        outcome, _ = ingest.communicate(timeout=120)
    finally:
        ingest.kill()
        link.close(offline=False)
        evil.close()
    report = json.loads(outcome)
    rep = report["devices"]["cam-evil"]
    assert rep["receipts"] == MAX_RECEIPTS and rep["refusals"]["receipt_limit"] == RECEIPTS - MAX_RECEIPTS
    assert len(list((out / "cam-evil" / "receipts").iterdir())) == MAX_RECEIPTS
    assert rep["orphan_media_count"] == MAX_ORPHANS and len(rep["orphan_media"]) == MAX_ORPHANS
    assert rep["refusals"]["orphan_limit"] == ORPHANS - MAX_ORPHANS
    assert "cam-evil" in report["findings"] and ingest.returncode == 1

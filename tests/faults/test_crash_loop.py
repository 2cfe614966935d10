"""kill -9 of the real agent process N times (CI: 20) with a TLS broker, TSA and ledger: nothing sealed is lost.

Manual run with 100+ kills: ``python scripts/crash_loop.py --kills 120`` (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.faults.conftest import FAULT_SCALE
from tests.faults.crash_loop import CrashLoopResult, crash_loop
from tests.faults.rig import Rig
from tests.support.broker import Mosquitto
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa

KILLS = max(1, int(20 * FAULT_SCALE))
ALLOWED_WARNINGS = ("not yet covered by an anchored checkpoint", "orphan")


def check_crash_loop(rig: Rig, res: CrashLoopResult, ingest: dict[str, Any]) -> None:
    """Every assertion of the crash loop, shared with scripts/crash_loop.py."""
    records = rig.sealed()
    assert res.drained, "the final run did not deliver and anchor everything"
    # 1. The vault verifies, anchors included; gaps are explained by restart records.
    rep = rig.verify_json(rig.vault)
    assert rep["ok"], rep["problems"][:10]
    odd = [w for w in rep["warnings"] if not any(a in w["warning"] for a in ALLOWED_WARNINGS)]
    assert not odd, odd
    assert rep["items"] == len(records) == records[-1]["seq"] + 1, (rep["items"], len(records), records[-1]["seq"])
    # 2. Each kill cost nothing sealed: the next record after the newest one on disk at the kill is the
    #    restart record of the next run, which names it as its predecessor (the gap is recorded).
    by_seq = {r["seq"]: r for r in records}
    for k in res.kills:
        nxt = by_seq.get(k.last_seq + 1)
        assert nxt is not None and nxt["kind"] == "restart", f"kill {k.n}: seq {k.last_seq + 1} is {nxt}"
        prev = nxt["extra"]["previous"]
        assert (prev is None and k.last_seq == -1) or prev["seq"] == k.last_seq, (k, prev)
    restarts = [r for r in records if r["kind"] == "restart"]
    runs = len({k.last_seq for k in res.kills}) + 1  # one per run that got as far as sealing
    assert len(restarts) == runs, (len(restarts), runs, [(k.n, k.last_seq, k.last_kind) for k in res.kills])
    # 3. What a kill interrupted (the open segment, a still being written) is kept, hashed in the next restart
    #    record: at most one open segment and one staging still per kill.
    orphans = [o for r in restarts for o in r["extra"].get("orphans", [])]
    assert len(orphans) <= 2 * len(res.kills), len(orphans)
    for o in orphans:
        path = rig.vault / "orphans" / o["name"]
        assert path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == o["sha256"], o
    # 4. The officer-side ingest has every sealed item, intact, and it verifies on its own.
    assert ingest["missing"] == [] and ingest["incomplete"] == [] and ingest["refused"] == 0, ingest
    assert ingest["records"] == len(records) and ingest["max_seq"] == records[-1]["seq"], (ingest, len(records))
    officer = rig.verify_json(rig.received / "cam-fault")
    assert officer["ok"], officer["problems"][:10]
    assert officer["items"] == rep["items"] and officer["kinds"] == rep["kinds"]
    # 5. Anchoring ran through the kills: checkpoints and receipts from both anchors are sealed.
    assert rep["kinds"].get("checkpoint", 0) >= 1 and rep["kinds"].get("receipt", 0) >= 2, rep["kinds"]


def test_kill9_loop_loses_nothing_sealed(tmp_path: Path, tls_broker: Mosquitto, tsa: LocalTsa,
                                         ledger: LocalLedger) -> None:
    rig = Rig(tmp_path / "device", broker=tls_broker, tsa=tsa, ledger=ledger)
    rig.start_ingest()
    try:
        res = crash_loop(rig, KILLS, seed=7, max_s=4.0)
        ingest = rig.stop_ingest()
    finally:
        rig.close()
    print("crash loop:", json.dumps(res.figures()))
    check_crash_loop(rig, res, ingest)
    # Kill moments were spread: some during start-up, most while recording stills.
    assert any(k.during_startup for k in res.kills) or KILLS < 5
    assert sum(k.sealed_this_run > 0 for k in res.kills) >= KILLS // 2
    # What a kill can cost is the still being made: its capture is at most one interval (+ encode) old.
    assert res.figures()["exposure_s_max"] < rig.still_interval_s + 5.0
    assert res.figures()["segments"] >= 1
    assert res.figures()["video_exposure_s_max"] < 2 * 2.0 + 5.0  # one 2 s segment (the open one) + sealing

"""AnchorService with its two threads (anchor-log, anchor-worker) on the real Sealer: items sealed online get
a TSA token and a ledger receipt without anyone calling pump(); close() joins both threads."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from agent.anchor.verify import AnchorTrust, anchor_checker
from agent.anchoring.service import AnchorService
from agent.anchoring.settings import AnchorConfig
from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.signing.verify import check
from tests.support.helpers import moment
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


def test_service_threads_anchor_online_items(sealer: Sealer, manual_clock: ManualClock, tmp_path: Path) -> None:
    tsa, ledger = LocalTsa(), LocalLedger()
    try:
        cfg = AnchorConfig.model_validate({
            "batch_max_records": 5, "batch_interval_s": 60,
            "tsa": {"url": tsa.url, "ca_file": str(tsa.ca_file)},
            "ledger": {"url": ledger.url, "verifier_key": ledger.verifier_key}})
        svc = AnchorService(cfg, sealer=sealer, moment=lambda: moment(manual_clock), clock=manual_clock,
                            vault_dir=sealer.vault.path, device_id="test-device", anchor_poll_s=0.05)
        svc.log.poll_s = 0.02
        svc.start()
        names = {t.name for t in threading.enumerate()}
        assert {"anchor-log", "anchor-worker"} <= names
        sealer.start(moment(manual_clock))
        for _ in range(4):
            sealer.seal("mark", moment(manual_clock))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(svc.log.files.receipts()) < 2:
            time.sleep(0.05)
        svc.close()
        svc.close()
        assert not {"anchor-log", "anchor-worker"} & {t.name for t in threading.enumerate()}
        assert {r.anchor for r in svc.log.files.receipts()} == {"tsa", "ledger"}
        assert tsa.requests == 1 and ledger.requests["checkpoints"] == 1
        trust = AnchorTrust(tsa_roots=svc.anchorer.anchors[0].trusted,  # type: ignore[attr-defined]
                            ledger_keys=[ledger.verifier])
        r = check(sealer.vault.path, checkers=[anchor_checker(trust)])
        assert r.ok, r.problems
        assert r.sections["anchoring"]["coverage"][0]["seq_to"] == 4
    finally:
        tsa.close()
        ledger.close()

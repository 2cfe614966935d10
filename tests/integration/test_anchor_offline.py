"""Six hours offline with thousands of items: on reconnect only the newest checkpoint is anchored,
costing exactly one TSA request and one ledger request, and that one checkpoint dates every item."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.anchor.bundle import LogMaterial
from agent.anchor.ledger import LedgerAnchor
from agent.anchor.log import DeviceLog, LogFiles
from agent.anchor.note import NoteSigner
from agent.anchor.tsa import TsaAnchor, load_pem_certs
from agent.anchor.verify import AnchorTrust, check_anchoring
from agent.anchoring.anchorer import Anchorer
from agent.core.clock import ManualClock
from tests.support.anchor_chain import SyntheticChain
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
ORIGIN = "evidence.example/dev1"


@pytest.fixture
def servers() -> Iterator[tuple[LocalTsa, LocalLedger]]:
    tsa, ledger = LocalTsa(), LocalLedger()
    yield tsa, ledger
    tsa.close()
    ledger.close()


def test_six_hours_offline_costs_one_tsa_and_one_ledger_request(
        tmp_path: Path, servers: tuple[LocalTsa, LocalLedger]) -> None:
    tsa, ledger = servers
    roots = load_pem_certs(tsa.ca_file)
    clock = ManualClock(wall=time.time_ns() - 7 * 3600 * 10**9)  # the simulated day ends before "now"
    chain = SyntheticChain(clock)
    key = ec.generate_private_key(ec.SECP256R1())
    files = LogFiles(tmp_path / "vault" / "log")
    anchorer = Anchorer([TsaAnchor(tsa.url, timeout_s=2, trusted=roots),
                         LedgerAnchor(ledger.url, "dev1", timeout_s=2, ledger_keys=[ledger.verifier])],
                        files, clock=clock, seal_receipt=lambda extra: chain.seal("receipt", extra),
                        backoff_initial_s=5, backoff_max_s=600)
    log = DeviceLog(tmp_path / "vault", origin=ORIGIN, signer=NoteSigner.from_private_key(ORIGIN, key),
                    seal=lambda kind, extra: chain.seal(kind, extra), clock=clock, batch_max=256,
                    batch_interval_s=60, on_checkpoint=anchorer.offer)
    chain.listeners.append(log.on_sealed)

    tsa.online = ledger.online = False
    attempts = 0
    for _ in range(6 * 3600 // 5):  # one item every 5 s for 6 hours = 4320 items
        chain.seal("still")
        clock.advance(5)
        log.pump()
        before = sum(st.failures for st in anchorer.state.values())
        anchorer.run_once()
        attempts += sum(st.failures for st in anchorer.state.values()) - before
    checkpoints = files.checkpoint_notes()
    assert len(checkpoints) >= 300  # a batch a minute, all signed and sealed while offline
    assert tsa.requests == 0 and ledger.total_posts == 0
    assert 10 < attempts < 200  # backoff keeps offline retries rare

    tsa.online = ledger.online = True
    anchorer.reset_backoff()
    assert anchorer.run_once() == 2
    assert anchorer.run_once() == 0
    assert tsa.requests == 1 and ledger.requests["checkpoints"] == 1
    newest = max(checkpoints)
    assert {r.checkpoint_size for r in files.receipts()} == {newest}
    log.pump()
    log.close()
    anchorer.close()

    result = check_anchoring(chain.log_items(), LogMaterial.from_dir(files.dir), key.public_key(),
                             AnchorTrust(tsa_roots=roots, ledger_keys=[ledger.verifier]))
    assert result.problems == []
    content = [i.seq for i in chain.items if i.kind == "still"]
    assert len(content) == 4320
    covered = [s for s in content if s < newest]
    assert len(content) - len(covered) < 12  # only the last minute's items wait for the next batch
    assert {result.not_later_than[s][1] for s in covered} <= {f"tsa@{newest}", f"ledger@{newest}"}
    assert {a["checkpoint_size"] for a in result.anchors} == {newest}

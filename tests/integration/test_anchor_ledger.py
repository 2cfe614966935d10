"""Customs evidence-storage client against the fixture platform, including injected failures."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.anchor.ledger import LedgerAnchor, check_receipt, digest, parse_tlog_proof, verify_ledger_proof
from agent.anchor.log import LogFiles
from agent.anchor.note import Checkpoint, NoteSigner, sign_note
from agent.anchoring.anchorer import Anchorer
from agent.core.clock import ManualClock
from agent.core.errors import UplinkError, VerificationError
from tests.support.ledger_server import LocalLedger

CP = Checkpoint("evidence.example/dev1", 7, hashlib.sha256(b"root").digest())


@pytest.fixture
def ledger() -> Iterator[LocalLedger]:
    srv = LocalLedger(timeout_sleep_s=1.0, token="secret")
    yield srv
    srv.close()


def _note() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return sign_note(CP.body(), NoteSigner.from_private_key(CP.origin, key)).encode()


def _client(ledger: LocalLedger, **kw: object) -> LedgerAnchor:
    return LedgerAnchor(ledger.url, "dev1", api_token="secret", timeout_s=0.5, ledger_keys=[ledger.verifier],
                        **kw)  # type: ignore[arg-type]


def test_checkpoint_receipt_with_tlog_proof(ledger: LocalLedger) -> None:
    note = _note()
    for _ in range(3):  # a few other entries so the proof is not trivial
        _client(ledger).submit(_note(), CP)
    r = _client(ledger).submit(note, CP)
    rec = r.data["receipt"]
    assert rec["certificate_id"] and rec["ledger_tx_id"] and r.note_sha256 == hashlib.sha256(note).hexdigest()
    proof = parse_tlog_proof(rec["proof"])
    assert proof.index == 3 and len(proof.proof) == 2
    cp = verify_ledger_proof(rec["proof"], hashlib.sha256(note).digest(), [ledger.verifier])
    assert cp.size == 4
    with pytest.raises(VerificationError):
        verify_ledger_proof(rec["proof"], hashlib.sha256(b"other").digest(), [ledger.verifier])
    assert _client(ledger).latest() is not None
    assert LedgerAnchor(ledger.url, "nobody", timeout_s=1).latest() is None


@pytest.mark.parametrize("fault,match", [("timeout", "failed"), ("500", "HTTP 500"), ("503", "HTTP 503"),
                                         ("malformed", "malformed JSON"), ("wrong_hash", "different hash"),
                                         ("drop", "failed")])
def test_injected_faults_raise_uplink_error(ledger: LocalLedger, fault: str, match: str) -> None:
    ledger.faults.append(fault)
    with pytest.raises(UplinkError, match=match):
        _client(ledger).submit(_note(), CP)
    _client(ledger).submit(_note(), CP)  # next request works again


def test_bad_token_is_refused(ledger: LocalLedger) -> None:
    with pytest.raises(UplinkError, match="HTTP 401"):
        LedgerAnchor(ledger.url, "dev1", api_token="wrong", timeout_s=1).submit(_note(), CP)


def test_item_hash_sha256_and_sm3(ledger: LocalLedger) -> None:
    rec = b'{"seq":1}'
    r = _client(ledger, hash_alg="sm3").submit_item(1, rec)
    assert r.data["receipt"]["subject"] == {"hash_alg": "sm3", "hash": digest("sm3", rec).hex()}
    assert digest("sm3", b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    r2 = _client(ledger).submit_item(2, rec)
    check_receipt(r2.data["receipt"], "sha256", hashlib.sha256(rec).digest(), [ledger.verifier])


def test_anchorer_backs_off_and_recovers(ledger: LocalLedger, tmp_path: Path) -> None:
    clock = ManualClock()
    files = LogFiles(tmp_path / "log")
    sealed: list[dict[str, object]] = []
    anchorer = Anchorer([_client(ledger)], files, clock=clock, seal_receipt=sealed.append,
                        backoff_initial_s=5, backoff_max_s=60)
    anchorer.offer(_note().decode(), CP)
    ledger.faults.extend(["500", "malformed", "wrong_hash"])
    delays = []
    for _ in range(3):
        assert anchorer.run_once() == 0
        st = anchorer.state["ledger"]
        delays.append((st.next_try_ns - clock.mono_ns()) / 1e9)
        assert anchorer.run_once() == 0  # not due yet: no request
        clock.advance(delays[-1])
    assert delays == [5, 10, 20]
    assert ledger.requests["checkpoints"] == 1  # only the wrong-hash request reached the handler proper
    assert anchorer.run_once() == 1
    assert anchorer.pending() == [] and len(sealed) == 1 and files.receipts()[0].anchor == "ledger"
    anchorer.close()
    anchorer.close()

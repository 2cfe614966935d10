"""DeviceLog: batch closing by count and time, checkpoint records as leaves, catch-up, restart."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from agent.anchor.bundle import LogMaterial
from agent.anchor.log import DeviceLog, LogFiles
from agent.anchor.merkle import leaf_hash, root_of, verify_consistency, verify_inclusion
from agent.anchor.note import NoteSigner, ecdsa_verifier, open_checkpoint
from agent.anchor.verify import AnchorTrust, LogItem, check_anchoring
from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.signing.records import canonical, parse_sidecar
from tests.support.anchor_chain import SyntheticChain
from tests.support.helpers import moment

ORIGIN = "evidence.example/dev1"


def _log(tmp: Path, chain: SyntheticChain, key: ec.EllipticCurvePrivateKey, **kw: object) -> DeviceLog:
    log = DeviceLog(tmp, origin=ORIGIN, signer=NoteSigner.from_private_key(ORIGIN, key),
                    seal=lambda kind, extra: chain.seal(kind, extra), clock=chain.clock, **kw)  # type: ignore[arg-type]
    chain.listeners.append(log.on_sealed)
    return log


def test_batches_close_by_count_and_by_time_and_idle_stays_quiet(tmp_path: Path) -> None:
    clock = ManualClock()
    chain = SyntheticChain(clock)
    key = ec.generate_private_key(ec.SECP256R1())
    seen: list[int] = []
    log = _log(tmp_path, chain, key, batch_max=8, batch_interval_s=60,
               on_checkpoint=lambda note, cp: seen.append(cp.size))
    for _ in range(8):
        chain.seal("still")
    log.pump()
    assert seen == [8]  # count
    chain.seal("still")
    log.pump()
    clock.advance(59)
    log.pump()
    assert seen == [8]
    clock.advance(1)
    log.pump()
    assert seen == [8, 10]  # time: 8 stills + checkpoint record + 1 still
    for _ in range(5):  # idle: checkpoint records alone never open a batch
        clock.advance(120)
        log.pump()
    assert seen == [8, 10]
    notes = log.files.checkpoint_notes()
    v = ecdsa_verifier(ORIGIN, key.public_key())
    cps = {s: open_checkpoint(n, [v], origin=ORIGIN) for s, n in notes.items()}
    leaves = [leaf_hash(canonical(i.record)) for i in chain.items]
    assert cps[8].root == root_of(leaves[:8]) and cps[10].root == root_of(leaves[:10])
    cp_rec = chain.items[8]
    assert cp_rec.kind == "checkpoint" and cp_rec.record["extra"]["tree_size"] == 8
    second = next(i for i in chain.items if i.kind == "checkpoint" and i.record["extra"]["tree_size"] == 10)
    cons = second.record["extra"]["consistency"]
    verify_consistency(8, 10, [base64.b64decode(h) for h in cons["proof"]], cps[8].root, cps[10].root)
    p = log.proof_for(3)
    verify_inclusion(leaves[3], 3, 10, [base64.b64decode(h) for h in p["proof"]], cps[10].root)
    log.close()
    log.close()


def test_catch_up_from_vault_and_reopen(tmp_path: Path, sealer: Sealer, manual_clock: ManualClock) -> None:
    ident = sealer.identity
    signer = NoteSigner.ecdsa(ORIGIN, ident.cert.public_key(), ident.sign)  # type: ignore[arg-type]
    sealer.start(moment(manual_clock))
    for _ in range(5):
        sealer.seal("mark", moment(manual_clock))

    def seal(kind: str, extra: dict[str, object]):  # type: ignore[no-untyped-def]
        return sealer.seal(kind, moment(manual_clock), extra=extra)

    log = DeviceLog(sealer.vault.path, origin=ORIGIN, signer=signer, seal=seal,
                    clock=manual_clock, batch_max=4)
    assert log.store.size == 6  # records sealed before the log existed were caught up
    sealer.add_listener(log.on_sealed)
    sealer.seal("mark", moment(manual_clock))
    log.pump()
    assert log.last_checkpoint is not None and log.last_checkpoint.size == 7
    log.close()
    for _ in range(3):  # sealed while the log is down
        sealer.seal("mark", moment(manual_clock))
    again = DeviceLog(sealer.vault.path, origin=ORIGIN, signer=signer, seal=seal,
                      clock=manual_clock, batch_max=4)
    assert again.store.size == 11 and again.last_checkpoint is not None and again.last_checkpoint.size == 7
    again.checkpoint()
    again.close()
    bodies = sorted((p for p in (sealer.vault.path / "items").rglob("*.rec")), key=lambda p: p.name)
    recs = [parse_sidecar(p.read_bytes(), p.name) for p in bodies]
    items = [LogItem(r.record["seq"], r.record["kind"], r.body, r.record) for r in recs]
    res = check_anchoring(items, LogMaterial.from_dir(sealer.vault.path / "log"),
                          recs[0].certificates()[0].public_key(),  # type: ignore[arg-type]
                          AnchorTrust())
    assert res.problems == [] and sorted(res.checkpoints) == [7, 11]


def test_threaded_log_closes_batch_and_joins(tmp_path: Path) -> None:
    clock = ManualClock()
    chain = SyntheticChain(clock)
    key = ec.generate_private_key(ec.SECP256R1())
    log = _log(tmp_path, chain, key, batch_max=3, poll_s=0.01)
    log.start()
    for _ in range(3):
        chain.seal("still")
    log.close()  # drains the queue
    assert log.store.size >= 3
    assert LogFiles(tmp_path / "log").latest_checkpoint() is not None


def test_records_sealed_while_verifying_are_not_called_deleted(sealer: Sealer, manual_clock: ManualClock) -> None:
    ident = sealer.identity
    signer = NoteSigner.ecdsa(ORIGIN, ident.cert.public_key(), ident.sign)  # type: ignore[arg-type]
    log = DeviceLog(sealer.vault.path, origin=ORIGIN, signer=signer, clock=manual_clock, batch_max=3,
                    seal=lambda kind, extra: sealer.seal(kind, moment(manual_clock), extra=extra))
    sealer.add_listener(log.on_sealed)
    sealer.start(moment(manual_clock))
    for _ in range(5):
        sealer.seal("mark", moment(manual_clock))
        log.pump()
    log.close()
    recs = [parse_sidecar(p.read_bytes(), p.name) for p in sorted((sealer.vault.path / "items").rglob("*.rec"))]
    items = [LogItem(r.record["seq"], r.record["kind"], r.body, r.record) for r in recs]
    key = recs[0].certificates()[0].public_key()
    mat = LogMaterial.from_dir(sealer.vault.path / "log")
    listed_early = check_anchoring(items[:-2], mat, key, AnchorTrust())  # type: ignore[arg-type]
    assert listed_early.problems == [] and any("sealed while verifying" in w[1] for w in listed_early.warnings)
    for p in sorted((sealer.vault.path / "items").rglob("*.rec"))[-2:]:
        p.unlink()
    gone = check_anchoring(items[:-2], LogMaterial.from_dir(sealer.vault.path / "log"), key,  # type: ignore[arg-type]
                           AnchorTrust())
    assert any("log tail truncated" in p[1] for p in gone.problems)

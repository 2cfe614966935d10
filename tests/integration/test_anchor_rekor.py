"""Anchoring through Sigstore's own servers: Rekor v2 (rekor-tiles, POSIX backend) and timestamp-authority.

The device's AnchorService logs each checkpoint note in Rekor (hashedrekord v0.0.2, device key) and gets an
RFC 3161 token from the Sigstore TSA; verify checks both offline. Attacks: a receipt for another note, a
forged log checkpoint, a checkpoint by a log that forked. Faults: Rekor restarted and killed mid-run.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from agent.anchor.base import AnchorReceipt
from agent.anchor.note import NoteSigner, parse_note, parse_verifier_key, sign_note
from agent.anchor.rekor import log_verifier_key
from agent.anchor.tsa import load_pem_certs
from agent.anchor.verify import AnchorTrust, anchor_checker
from agent.anchoring.rekor import RekorAnchor
from agent.anchoring.service import AnchorService
from agent.anchoring.settings import AnchorConfig
from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.signing.verify import check
from tests.support.helpers import moment, wait_for
from tests.support.sigstore_servers import RekorV2, SigstoreTsa, require_servers


@pytest.fixture(scope="module")
def tsa() -> Iterator[SigstoreTsa]:
    require_servers()
    srv = SigstoreTsa()
    yield srv
    srv.close()


@pytest.fixture
def rekor() -> Iterator[RekorV2]:
    require_servers()
    srv = RekorV2()
    yield srv
    srv.close()


def _service(sealer: Sealer, clock: ManualClock, rekor: RekorV2, tsa: SigstoreTsa | None = None,
             batch: int = 5, tiles: bool = False) -> AnchorService:
    raw: dict[str, Any] = {"batch_max_records": batch, "batch_interval_s": 600, "backoff_initial_s": 0.05,
                           "rekor": {"url": rekor.url, "public_key": str(rekor.public_key_file),
                                     "origin": rekor.origin, "timeout_s": 20}}
    if tiles:
        raw["rekor"]["tiles_url"] = rekor.tiles_url
    if tsa is not None:
        raw["tsa"] = {"url": tsa.url, "ca_file": str(tsa.ca_file)}
    svc = AnchorService(AnchorConfig.model_validate(raw), sealer=sealer, moment=lambda: moment(clock), clock=clock,
                        vault_dir=sealer.vault.path, device_id="test-device", anchor_poll_s=0.05)
    svc.log.poll_s = 0.02
    return svc


def _trust(rekor: RekorV2, tsa: SigstoreTsa | None = None, *, log_key: bool = True) -> AnchorTrust:
    keys = [parse_verifier_key(log_verifier_key(rekor.origin, rekor.public_key_file.read_bytes()))] if log_key else []
    return AnchorTrust(tsa_roots=load_pem_certs(tsa.ca_file) if tsa else (), ledger_keys=keys)


def _problems(r: Any) -> list[str]:
    return [p["problem"] for p in r.problems]


def _warnings(r: Any) -> list[str]:
    return [w["warning"] for w in r.warnings]


def _receipts(svc: AnchorService, anchor: str) -> list[AnchorReceipt]:
    return sorted((r for r in svc.log.files.receipts() if r.anchor == anchor), key=lambda r: r.checkpoint_size)


def _anchor_batch(sealer: Sealer, clock: ManualClock, svc: AnchorService, n: int, anchor: str = "rekor") -> None:
    before = len(_receipts(svc, anchor))
    for _ in range(n):
        sealer.seal("mark", moment(clock))
    wait_for(lambda: len(_receipts(svc, anchor)) > before, timeout=60)


def test_device_anchors_through_rekor_and_sigstore_tsa(sealer: Sealer, manual_clock: ManualClock, rekor: RekorV2,
                                                       tsa: SigstoreTsa, tmp_path: Path) -> None:
    svc = _service(sealer, manual_clock, rekor, tsa)
    svc.start()
    try:
        sealer.start(moment(manual_clock))
        _anchor_batch(sealer, manual_clock, svc, 4)
        wait_for(lambda: _receipts(svc, "tsa"), timeout=60)
        _anchor_batch(sealer, manual_clock, svc, 5)  # the receipts of batch 1 are leaves of batch 2
    finally:
        svc.close()
    r = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor, tsa))])
    assert r.ok, r.problems
    rk = [a for a in r.sections["anchoring"]["anchors"] if a["anchor"] == "rekor"]
    assert len(rk) >= 2 and all(a["log_signature_checked"] and a["log_origin"] == rekor.origin for a in rk)
    assert not [w for w in _warnings(r) if "Rekor" in w]
    # the Sigstore TSA's token over the same note verifies with openssl ts -verify too
    t = _receipts(svc, "tsa")[0]
    note = next(p for p in (sealer.vault.path / "log" / "checkpoints").iterdir()
                if p.name.startswith(f"{t.checkpoint_size:012d}") or int(p.stem) == t.checkpoint_size)
    (tmp_path / "t.tsr").write_bytes(base64.b64decode(t.data["token"]))
    out = subprocess.run(["openssl", "ts", "-verify", "-in", str(tmp_path / "t.tsr"), "-data", str(note),
                          "-CAfile", str(tsa.root_file), "-untrusted", str(tsa.chain_file)],
                         capture_output=True, text=True, check=False)
    assert "Verification: OK" in out.stdout, out.stderr


def test_inclusion_proof_checks_with_sigstore_python(sealer: Sealer, manual_clock: ManualClock,
                                                     rekor: RekorV2) -> None:
    """An independent client (sigstore-python's Merkle and checkpoint code) accepts what the device kept."""
    sg_merkle = pytest.importorskip("sigstore._internal.merkle")
    sg_checkpoint = pytest.importorskip("sigstore._internal.rekor.checkpoint")
    from sigstore._internal.trust import Keyring, RekorKeyring
    from sigstore.models import TransparencyLogEntry
    from sigstore_models.common.v1 import PublicKey, PublicKeyDetails
    from sigstore_models.rekor.v1 import TransparencyLogEntry as InnerEntry

    svc = _service(sealer, manual_clock, rekor)
    svc.start()
    try:
        sealer.start(moment(manual_clock))
        for _ in range(3):
            _anchor_batch(sealer, manual_clock, svc, 5)
    finally:
        svc.close()
    pub = serialization.load_pem_public_key(rekor.public_key_file.read_bytes())
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    keyring = RekorKeyring(Keyring([PublicKey(raw_bytes=base64.b64encode(der),
                                              key_details=PublicKeyDetails.PKIX_ED25519)]))
    for rc in _receipts(svc, "rekor"):
        entry = TransparencyLogEntry(InnerEntry.from_json(json.dumps(rc.data["transparency_log_entry"])))
        sg_merkle.verify_merkle_inclusion(entry)
        sg_checkpoint.verify_checkpoint(keyring, entry)
    # and it rejects an altered proof
    tle = json.loads(json.dumps(_receipts(svc, "rekor")[-1].data["transparency_log_entry"]))
    tle["inclusionProof"]["hashes"][0] = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(Exception, match="root hash"):
        sg_merkle.verify_merkle_inclusion(TransparencyLogEntry(InnerEntry.from_json(json.dumps(tle))))


def _rewrite_receipt(vault: Path, size: int, edit: Any) -> None:
    p = vault / "log" / "anchors" / f"{size:012d}-rekor.json"
    d = json.loads(p.read_text())
    edit(d)
    p.write_text(json.dumps(d))


def _anchored_vault(sealer: Sealer, clock: ManualClock, rekor: RekorV2, batches: int = 2) -> AnchorService:
    svc = _service(sealer, clock, rekor)
    svc.start()
    try:
        sealer.start(moment(clock))
        for _ in range(batches):
            _anchor_batch(sealer, clock, svc, 5)
    finally:
        svc.close()
    return svc


def test_receipt_for_another_note_is_a_problem(sealer: Sealer, manual_clock: ManualClock, rekor: RekorV2) -> None:
    svc = _anchored_vault(sealer, manual_clock, rekor)
    first, second = _receipts(svc, "rekor")[:2]

    def swap(d: dict[str, Any]) -> None:  # keep the names of checkpoint 1, carry the entry of checkpoint 2
        d["data"]["transparency_log_entry"] = second.data["transparency_log_entry"]

    _rewrite_receipt(sealer.vault.path, first.checkpoint_size, swap)
    r = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor))])
    assert any("Rekor" in what and "different hash" in what for what in _problems(r)), r.problems


def test_forged_log_checkpoint_is_a_problem(sealer: Sealer, manual_clock: ManualClock, rekor: RekorV2) -> None:
    svc = _anchored_vault(sealer, manual_clock, rekor, batches=1)
    rc = _receipts(svc, "rekor")[0]
    forger = NoteSigner.from_private_key(rekor.origin, ec.generate_private_key(ec.SECP256R1()))

    def forge(d: dict[str, Any]) -> None:  # same checkpoint text, signed by a key that is not the log's
        proof = d["data"]["transparency_log_entry"]["inclusionProof"]
        proof["checkpoint"]["envelope"] = sign_note(parse_note(proof["checkpoint"]["envelope"]).text, forger)

    _rewrite_receipt(sealer.vault.path, rc.checkpoint_size, forge)
    r = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor))])
    assert any("Rekor checkpoint" in what and "trusted key" in what for what in _problems(r)), r.problems
    # without the log's key verify says what it could not check instead of passing it silently
    r2 = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor, log_key=False))])
    assert any("Rekor checkpoint" in what and "not checked" in what for what in _warnings(r2)), r2.warnings


def test_forked_log_is_detected(sealer: Sealer, manual_clock: ManualClock, rekor: RekorV2) -> None:
    """The same log key and origin signing two different trees of one size (a split view) is a problem."""
    fork = RekorV2()  # a second log with the same key and origin, other contents
    try:
        fork.stop()
        fork.key_file.write_bytes(rekor.key_file.read_bytes())
        fork.public_key_file.write_bytes(rekor.public_key_file.read_bytes())
        fork.start()
        svc = _service(sealer, manual_clock, rekor, batch=5)
        svc.start()
        try:
            sealer.start(moment(manual_clock))
            _anchor_batch(sealer, manual_clock, svc, 5)  # leaf 0 of the real log
            anchor = svc.anchorer.anchors[0]
            assert isinstance(anchor, RekorAnchor)
            anchor.base_url = fork.url  # the next checkpoint goes to the fork: leaf 0 again, another tree
            _anchor_batch(sealer, manual_clock, svc, 5)
        finally:
            svc.close()
    finally:
        fork.close()
    sizes = {r.data["log_size"] for r in _receipts(svc, "rekor")}
    assert sizes == {1}
    r = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor))])
    assert any("forked" in what for what in _problems(r)), r.problems


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_rekor_down_mid_run_device_retries_nothing_lost(sealer: Sealer, manual_clock: ManualClock,
                                                        rekor: RekorV2, how: str) -> None:
    svc = _service(sealer, manual_clock, rekor)
    svc.start()
    try:
        sealer.start(moment(manual_clock))
        _anchor_batch(sealer, manual_clock, svc, 5)
        rekor.stop() if how == "restart" else rekor.kill()
        for _ in range(5):
            sealer.seal("mark", moment(manual_clock))
        wait_for(lambda: svc.anchorer.state["rekor"].failures >= 1, timeout=60)
        rekor.start()
        svc.anchorer.reset_backoff()
        wait_for(lambda: not svc.anchorer.pending(), timeout=60)
    finally:
        svc.close()
    got = _receipts(svc, "rekor")
    assert len(got) >= 2 and got[-1].data["log_index"] == 1 and got[-1].data["log_size"] >= 2
    r = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor))])
    assert r.ok, r.problems
    assert got[-1].checkpoint_size >= 11  # restart record + 10 marks + the first receipt, none lost


def test_log_key_pem_and_verifier_key_agree(rekor: RekorV2) -> None:
    key = serialization.load_pem_public_key(rekor.public_key_file.read_bytes())
    assert isinstance(key, ed25519.Ed25519PublicKey)
    vk = log_verifier_key(rekor.origin, rekor.public_key_file.read_bytes())
    assert vk.startswith(rekor.origin + "+") and parse_verifier_key(vk).name == rekor.origin


def _other_entries(rekor: RekorV2, n: int) -> None:
    """Other devices' entries in between, so the trees differ in more than one leaf."""
    key = ec.generate_private_key(ec.SECP256R1())
    other = RekorAnchor(rekor.url, device_key=key.public_key(), sign=lambda b: key.sign(b, ec.ECDSA(hashes.SHA256())),
                        log_keys=[])
    for i in range(n):
        other.post_entry(b"other device note %d\n" % i)


def test_receipts_carry_consistency_proofs_from_tiles(sealer: Sealer, manual_clock: ManualClock,
                                                      rekor: RekorV2) -> None:
    svc = _service(sealer, manual_clock, rekor, tiles=True)
    svc.start()
    try:
        sealer.start(moment(manual_clock))
        for i in range(3):
            _other_entries(rekor, 1 + 2 * i)
            _anchor_batch(sealer, manual_clock, svc, 5)
    finally:
        svc.close()
    got = _receipts(svc, "rekor")
    assert "consistency" not in got[0].data
    for r in got[1:]:
        c = r.data["consistency"]
        assert "error" not in c and c["proof"], c
    r = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor))])
    assert r.ok, r.problems
    # an altered proof hash, or a "previous" checkpoint of another tree, is a problem
    size = got[-1].checkpoint_size

    def alter(d: dict[str, Any]) -> None:
        d["data"]["consistency"]["proof"][0] = base64.b64encode(b"\x01" * 32).decode()

    _rewrite_receipt(sealer.vault.path, size, alter)
    r = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor))])
    assert any("not append-only" in what for what in _problems(r)), r.problems


def test_restarted_device_proves_consistency_to_its_last_receipt(sealer: Sealer, manual_clock: ManualClock,
                                                                 rekor: RekorV2) -> None:
    svc = _service(sealer, manual_clock, rekor, tiles=True)
    svc.start()
    try:
        sealer.start(moment(manual_clock))
        _anchor_batch(sealer, manual_clock, svc, 5)
    finally:
        svc.close()
    _other_entries(rekor, 3)
    svc2 = _service(sealer, manual_clock, rekor, tiles=True)  # a new process: primed from the stored receipts
    svc2.start()
    try:
        _anchor_batch(sealer, manual_clock, svc2, 5)
    finally:
        svc2.close()
    last = _receipts(svc2, "rekor")[-1]
    assert last.data["consistency"]["proof"] and "error" not in last.data["consistency"]


def test_entry_by_another_key_is_a_problem(sealer: Sealer, manual_clock: ManualClock, rekor: RekorV2) -> None:
    """Someone else logged this very note under their key: the digest matches, the signer is not the device."""
    svc = _anchored_vault(sealer, manual_clock, rekor, batches=1)
    rc = _receipts(svc, "rekor")[0]
    note = (sealer.vault.path / "log" / "checkpoints" / f"{rc.checkpoint_size:012d}.note").read_bytes()
    key = ec.generate_private_key(ec.SECP256R1())
    thief = RekorAnchor(rekor.url, device_key=key.public_key(), sign=lambda b: key.sign(b, ec.ECDSA(hashes.SHA256())),
                        log_keys=[])
    stolen = json.loads(thief.post_entry(note))
    _rewrite_receipt(sealer.vault.path, rc.checkpoint_size,
                     lambda d: d["data"].__setitem__("transparency_log_entry", stolen))
    r = check(sealer.vault.path, checkers=[anchor_checker(_trust(rekor))])
    assert any("another key than the device's" in what for what in _problems(r)), r.problems


def test_device_refuses_an_answer_for_another_note(rekor: RekorV2, tmp_path: Path) -> None:
    """A log (or a man in the middle) answering with some other entry: no receipt is kept, the anchor retries."""
    from agent.anchor.log import LogFiles
    from agent.anchor.note import Checkpoint
    from agent.anchor.rekor import log_verifier
    from agent.anchoring.anchorer import Anchorer
    from agent.core.errors import UplinkError

    key = ec.generate_private_key(ec.SECP256R1())
    client = RekorAnchor(rekor.url, device_key=key.public_key(), sign=lambda b: key.sign(b, ec.ECDSA(hashes.SHA256())),
                         log_keys=[log_verifier(rekor.origin, rekor.public_key_file.read_bytes())])
    other_answer = client.post_entry(b"some other note\n")
    client.post_entry = lambda note: other_answer  # type: ignore[method-assign]
    with pytest.raises(UplinkError, match="different hash"):
        client.submit(b"my note\n", Checkpoint("evidence.example/x", 3, b"\0" * 32))
    anchorer = Anchorer([client], LogFiles(tmp_path / "log"), clock=ManualClock(wall=0))
    anchorer.offer("my note\n", Checkpoint("evidence.example/x", 3, b"\0" * 32))
    assert anchorer.run_once() == 0 and anchorer.pending() == ["rekor"] and not anchorer.files.receipts()
    assert anchorer.state["rekor"].failures == 1

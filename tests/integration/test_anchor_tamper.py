"""End to end with the real Sealer, vault and verifier: anchored evidence verifies, and each tampering the
issue names is detected and named by the anchoring checks."""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.anchor.bundle import export_log_files
from agent.anchor.commands import register
from agent.anchor.ledger import LedgerAnchor
from agent.anchor.tsa import TsaAnchor, load_pem_certs
from agent.anchor.verify import AnchorTrust, anchor_checker
from agent.anchoring.service import AnchorService
from agent.anchoring.settings import AnchorConfig
from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.export import export_bundle
from agent.signing.verify import Report, check
from tests.support.helpers import moment
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[LocalTsa, LocalLedger]]:
    tsa, ledger = LocalTsa(), LocalLedger()
    yield tsa, ledger
    tsa.close()
    ledger.close()


@pytest.fixture
def anchored(sealer: Sealer, manual_clock: ManualClock, servers: tuple[LocalTsa, LocalLedger],
             tmp_path: Path) -> Iterator[tuple[Path, AnchorService, AnchorTrust]]:
    """A vault with 40 stills in batches of 16: checkpoints at 17 and 35 leaves, both anchored; then 45 more
    records closed by time (mono clock only, so capture times stay before the real TSA time)."""
    tsa, ledger = servers
    cfg = AnchorConfig(batch_max_records=16, batch_interval_s=60)
    clock = manual_clock
    anchors = [TsaAnchor(tsa.url, trusted=load_pem_certs(tsa.ca_file)),
               LedgerAnchor(ledger.url, "test-device", ledger_keys=[ledger.verifier])]
    svc = AnchorService(cfg, sealer=sealer, moment=lambda: moment(clock), clock=clock,
                        vault_dir=sealer.vault.path, device_id="test-device", anchors=anchors)
    sealer.start(moment(clock))
    for _ in range(40):
        sealer.seal("still", moment(clock), media=b"jpeg", media_type="image/jpeg", ext="jpg")
        clock.mono += 10**8
        svc.log.pump()
        svc.anchorer.run_once()
    clock.mono += 61 * 10**9
    svc.log.pump()
    svc.anchorer.run_once()
    svc.log.pump()
    for _ in range(3):  # a short uncovered tail, as on a live device
        sealer.seal("mark", moment(clock))
    svc.log.pump()
    trust = AnchorTrust(tsa_roots=load_pem_certs(tsa.ca_file), ledger_keys=[ledger.verifier])
    yield sealer.vault.path, svc, trust
    svc.close()


def _check(path: Path, trust: AnchorTrust) -> Report:
    return check(path, checkers=[anchor_checker(trust)])


def _problems(r: Report) -> str:
    return "\n".join(f"{p['item']}: {p['problem']}" for p in r.problems)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("index.sqlite*"))
    return dst


def _items(vault: Path, kind: str | None = None) -> list[Path]:
    return sorted(p for p in (vault / "items").rglob("*.rec") if kind is None or f".{kind}." in p.name)


def test_anchored_vault_verifies_with_dates(anchored: tuple[Path, AnchorService, AnchorTrust]) -> None:
    vault, svc, trust = anchored
    r = _check(vault, trust)
    assert r.ok, _problems(r)
    a = r.sections["anchoring"]
    assert len(a["checkpoints"]) >= 3
    assert {x["anchor"] for x in a["anchors"]} == {"tsa", "ledger"}
    first = a["coverage"][0]
    assert first["seq_from"] == 0 and first["anchor"].endswith(f"@{a['checkpoints'][0]}")
    assert a["coverage"][-1]["anchor"] is None  # the newest marks await their batch
    assert any("not yet covered" in w["warning"] for w in r.warnings)
    assert len(_items(vault, "checkpoint")) >= 3 and len(_items(vault, "receipt")) >= 4
    proof = svc.log.proof_for(5)
    assert proof["tree_size"] == a["checkpoints"][-1] and len(proof["proof"]) <= 7


def test_deleting_an_item_covered_by_a_checkpoint_is_named(
        anchored: tuple[Path, AnchorService, AnchorTrust], tmp_path: Path) -> None:
    vault, _, trust = anchored
    v = _copy(vault, tmp_path / "v")
    for p in (v / "items").rglob("000000000005.*"):
        p.unlink()
    r = _check(v, trust)
    text = _problems(r)
    assert "seq 5: item deleted after it was logged: checkpoint of size 16, anchored by" in text, text


def test_truncating_the_tail_after_a_checkpoint_is_named(
        anchored: tuple[Path, AnchorService, AnchorTrust], servers: tuple[LocalTsa, LocalLedger],
        tmp_path: Path) -> None:
    vault, _, trust = anchored
    v = _copy(vault, tmp_path / "v")
    cut = 20  # covered by the second checkpoint; everything from here on is removed, checkpoints included
    for p in sorted((v / "items").rglob("*")):
        if p.is_file() and int(p.name[:12]) >= cut:
            p.unlink()
    r = _check(v, trust)
    text = _problems(r)
    assert "log tail truncated: checkpoint of size" in text and f"the evidence ends at seq {cut - 1}" in text, text
    # a thorough attacker also removes the log folder: the device-side evidence now looks complete, but the
    # newest checkpoint the ledger holds (fetched by the verifier) still shows the cut
    shutil.rmtree(v / "log")
    assert _check(v, trust).ok
    latest = LedgerAnchor(servers[1].url, "test-device").latest()
    assert latest is not None
    r2 = _check(v, AnchorTrust(tsa_roots=trust.tsa_roots, ledger_keys=trust.ledger_keys, witness_notes=[latest[0]]))
    assert "log tail truncated" in _problems(r2)


def test_backdated_capture_time_beyond_a_tsa_time_is_named(
        anchored: tuple[Path, AnchorService, AnchorTrust], sealer: Sealer, manual_clock: ManualClock) -> None:
    vault, svc, trust = anchored
    manual_clock.wall -= 2 * 3600 * 10**9  # clock set back (or a forger with the key) claims an earlier capture
    item = sealer.seal("still", moment(manual_clock), media=b"jpeg", media_type="image/jpeg", ext="jpg")
    svc.log.pump()
    r = _check(vault, trust)
    text = _problems(r)
    assert f"seq {item.seq}: capture time" in text and "back-dated" in text and "whose TSA time is" in text, text


def test_capture_time_later_than_the_anchor_time_is_named(
        anchored: tuple[Path, AnchorService, AnchorTrust], sealer: Sealer, manual_clock: ManualClock) -> None:
    vault, svc, trust = anchored
    manual_clock.wall += 3600 * 10**9  # device clock an hour ahead of the TSA
    item = sealer.seal("still", moment(manual_clock), media=b"jpeg", media_type="image/jpeg", ext="jpg")
    svc.log.pump()
    assert svc.log.checkpoint() is not None
    svc.log.pump()
    assert svc.anchorer.run_once() == 2
    r = _check(vault, trust)
    text = _problems(r)
    assert f"seq {item.seq}: capture time" in text and "proves the item already existed" in text, text



def test_export_bundle_with_log_files_verifies_offline(
        anchored: tuple[Path, AnchorService, AnchorTrust], tmp_path: Path) -> None:
    vault, _, trust = anchored
    out = tmp_path / "bundle.zip"
    res = export_bundle(vault, out)  # includes checkpoints, receipts and per-record inclusion proofs
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
    assert set(export_log_files(vault, range(res.first_seq or 0, (res.last_seq or 0) + 1))) <= names
    r = _check(out, trust)
    assert r.ok, _problems(r)
    cov = r.sections["anchoring"]["coverage"]
    assert cov[0]["seq_from"] == 0 and cov[0]["anchor"] and cov[0]["existed_no_later_than"]
    # a record altered inside the bundle fails its inclusion proof (and its signature, per the core verifier)
    with zipfile.ZipFile(out) as z:
        members = {n: z.read(n) for n in z.namelist()}
    proofs = json.loads(members["log/proofs.json"])
    proofs["3"]["proof"][0] = proofs["3"]["proof"][1]
    members["log/proofs.json"] = json.dumps(proofs).encode()
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    assert "seq 3: not included in checkpoint" in _problems(_check(bad, trust))


def test_cli_status_proof_and_eviction_bound(anchored: tuple[Path, AnchorService, AnchorTrust],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    vault, svc, _ = anchored
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["anchor-status", str(vault), "--json"])
    assert args.func(args) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["latest_checkpoint"] == 47 and s["anchors"]["tsa"]["checkpoint_size"] == 47
    assert svc.log.files.anchored_size() == 47 == svc.log.files.anchored_size(frozenset({"tsa", "ledger"}))
    assert svc.log.files.anchored_size(frozenset({"tsa", "other"})) == 0
    args = parser.parse_args(["anchor-proof", str(vault), "20"])
    assert args.func(args) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["tree_size"] == 35 and p["checkpoint"].startswith("evidence.example/test-device\n35\n")

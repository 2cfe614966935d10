"""Anchoring benchmark: requests per 10 000 items, proof size per item, seal->receipt latency, verify cost.

Run:  /tmp/venv/bin/python benchmarks/anchor_bench.py [--million] [--json]
      .venv/bin/python benchmarks/anchor_bench.py --rekor     (Rekor v2 cost per batch vs a bare submission)

Uses the real test TSA (`openssl ts -reply`) and the fixture ledger on 127.0.0.1. ``--million`` also builds
a 10^6-leaf store (tens of seconds); without it 10^3 and 10^5 are measured.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from agent.anchor.bundle import LogMaterial  # noqa: E402
from agent.anchor.ledger import LedgerAnchor, format_tlog_proof  # noqa: E402
from agent.anchor.log import DeviceLog, LogFiles  # noqa: E402
from agent.anchor.merkle import LeafStore, leaf_hash, verify_inclusion  # noqa: E402
from agent.anchor.note import Checkpoint, NoteSigner, sign_note  # noqa: E402
from agent.anchor.tsa import TsaAnchor, load_pem_certs  # noqa: E402
from agent.anchor.verify import AnchorTrust, check_anchoring  # noqa: E402
from agent.anchoring.anchorer import Anchorer  # noqa: E402
from agent.core.clock import ManualClock, SystemClock  # noqa: E402
from tests.support.anchor_chain import SyntheticChain  # noqa: E402
from tests.support.ledger_server import LocalLedger  # noqa: E402
from tests.support.tsa_server import LocalTsa  # noqa: E402

ORIGIN = "evidence.example/bench"


def _stack(tmp: Path, tsa: LocalTsa, ledger: LocalLedger, clock: Any, *, batch_max: int, interval_s: float,
           poll_s: float = 0.2) -> tuple[SyntheticChain, DeviceLog, Anchorer, ec.EllipticCurvePrivateKey]:
    chain = SyntheticChain(clock, "bench")
    key = ec.generate_private_key(ec.SECP256R1())
    files = LogFiles(tmp / "log")
    anchorer = Anchorer([TsaAnchor(tsa.url, trusted=load_pem_certs(tsa.ca_file)),
                         LedgerAnchor(ledger.url, "bench", ledger_keys=[ledger.verifier])], files, clock=clock,
                        seal_receipt=lambda extra: chain.seal("receipt", extra), poll_s=poll_s)
    log = DeviceLog(tmp, origin=ORIGIN, signer=NoteSigner.from_private_key(ORIGIN, key),
                    seal=lambda kind, extra: chain.seal(kind, extra), clock=clock, batch_max=batch_max,
                    batch_interval_s=interval_s, on_checkpoint=anchorer.offer, poll_s=poll_s)
    chain.listeners.append(log.on_sealed)
    return chain, log, anchorer, key


def requests_per_10k(tsa: LocalTsa, ledger: LocalLedger, period_s: float) -> dict[str, Any]:
    """10 000 items sealed every ``period_s`` (simulated), online; count anchor requests."""
    t0, l0 = tsa.requests, ledger.total_posts
    with tempfile.TemporaryDirectory() as d:
        clock = ManualClock(wall=time.time_ns() - 10**9 * int(10_000 * period_s + 3600))
        chain, log, anchorer, key = _stack(Path(d), tsa, ledger, clock, batch_max=256, interval_s=60)
        start = time.perf_counter()
        for _ in range(10_000):
            chain.seal("still")
            clock.advance(period_s)
            log.pump()
            anchorer.run_once()
        elapsed = time.perf_counter() - start
        batches = len(log.files.checkpoint_notes())
        items = chain.log_items()
        mat = LogMaterial.from_dir(log.files.dir)
        # simulated capture times sit in the past while the real TSA stamps "now": switch the time checks off
        trust = AnchorTrust(tsa_roots=load_pem_certs(tsa.ca_file), ledger_keys=[ledger.verifier],
                            backdate_tolerance_s=1e9, clock_tolerance_s=1e9)
        v0 = time.perf_counter()
        result = check_anchoring(items, mat, key.public_key(), trust)
        verify_s = time.perf_counter() - v0
        log.close()
        anchorer.close()
    return {"item_period_s": period_s, "batches": batches, "tsa_requests": tsa.requests - t0,
            "ledger_requests": ledger.total_posts - l0,
            "requests_per_batch": round((tsa.requests - t0 + ledger.total_posts - l0) / max(batches, 1), 2),
            "log_cpu_s_per_item": round(elapsed / 10_000, 6), "verify_problems": [p for p in result.problems[:3]],
            "anchoring_verify_us_per_item": round(verify_s / len(items) * 1e6, 1)}


def proof_sizes(n: int, tmp: Path) -> dict[str, Any]:
    store = LeafStore(tmp / f"store{n}")
    t = time.perf_counter()
    for i in range(n):
        store.append(leaf_hash(i.to_bytes(8, "big")), sync=False)
    store.sync()
    build = time.perf_counter() - t
    root = store.root()
    key = ec.generate_private_key(ec.SECP256R1())
    note = sign_note(Checkpoint(ORIGIN, n, root).body(), NoteSigner.from_private_key(ORIGIN, key))
    worst, t = 0, time.perf_counter()
    samples = [0, n // 3, n // 2, n - 1]
    for i in samples:
        p = store.inclusion_proof(i, n)
        verify_inclusion(leaf_hash(i.to_bytes(8, "big")), i, n, p, root)
        worst = max(worst, len(p))
    per_proof_ms = (time.perf_counter() - t) / len(samples) * 1e3
    p = store.inclusion_proof(n // 2, n)
    as_json = len(json.dumps({"seq": n // 2, "tree_size": n, "proof": [base64.b64encode(h).decode() for h in p]}))
    store.close()
    return {"items": n, "proof_hashes": worst, "proof_bytes_binary": worst * 32, "proof_bytes_json": as_json,
            "proof_bytes_tlog_proof_text_incl_signed_checkpoint": len(format_tlog_proof(n // 2, p, note)),
            "ceil_log2_n": math.ceil(math.log2(n)), "build_s": round(build, 2),
            "proof_generate_and_verify_ms": round(per_proof_ms, 3)}


def seal_to_receipt_latency(tsa: LocalTsa, ledger: LocalLedger, interval_s: float, items: int) -> dict[str, Any]:
    """Real threads and clock: seal items at random moments, time until a receipt covers each one."""
    import random

    rng = random.Random(7)
    covered_at: dict[str, float] = {}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as d:
        chain, log, anchorer, _ = _stack(Path(d), tsa, ledger, SystemClock(), batch_max=256,
                                         interval_s=interval_s, poll_s=0.05)
        sealed: list[tuple[int, float]] = []

        def on_receipt(r: Any) -> None:
            with lock:
                now = time.monotonic()
                for seq, _t in sealed:
                    covered_at.setdefault(f"{r.anchor}:{seq}", now) if seq < r.checkpoint_size else None

        anchorer.on_receipt = on_receipt
        log.start()
        anchorer.start()
        for _ in range(items):
            time.sleep(rng.uniform(0, interval_s / 2))
            it = chain.seal("still")
            with lock:
                sealed.append((it.seq, time.monotonic()))
        deadline = time.monotonic() + interval_s + 15
        while time.monotonic() < deadline:
            with lock:
                if all(f"{a}:{s}" in covered_at for s, _ in sealed for a in ("tsa", "ledger")):
                    break
            time.sleep(0.05)
        log.close()
        anchorer.close()
    lat = {a: sorted(covered_at[f"{a}:{s}"] - t for s, t in sealed if f"{a}:{s}" in covered_at)
           for a in ("tsa", "ledger")}
    return {"batch_interval_s": interval_s, "items": items,
            **{f"{a}_max_s": round(v[-1], 2) if v else None for a, v in lat.items()},
            **{f"{a}_median_s": round(v[len(v) // 2], 2) if v else None for a, v in lat.items()},
            "all_covered": all(len(v) == items for v in lat.values())}


def full_verify(tsa: LocalTsa, ledger: LocalLedger, n: int) -> dict[str, Any]:
    """Real Sealer + vault with ``n`` stills anchored in batches of 256; agent.signing.verify.check with and without
    the anchoring checker, per item."""
    from agent.anchor.verify import anchor_checker
    from agent.anchoring.service import AnchorService
    from agent.anchoring.settings import AnchorConfig
    from agent.device.sealer import Sealer
    from agent.evidence.vault import Vault
    from agent.signing.keys import init_identity, load_identity
    from agent.signing.verify import check
    from tests.conftest import moment

    with tempfile.TemporaryDirectory() as d:
        init_identity(Path(d) / "keys", "bench", "Bench")
        vault = Vault(Path(d) / "vault")
        sealer = Sealer(vault, load_identity(Path(d) / "keys"), device_id="bench", site_id="site")
        clock = ManualClock(wall=time.time_ns())  # only mono moves: capture times stay before the real TSA time
        anchors = [TsaAnchor(tsa.url, trusted=load_pem_certs(tsa.ca_file)),
                   LedgerAnchor(ledger.url, "bench", ledger_keys=[ledger.verifier])]
        svc = AnchorService(AnchorConfig(), sealer=sealer, moment=lambda: moment(clock), clock=clock,
                            vault_dir=vault.path, device_id="bench", anchors=anchors)
        sealer.start(moment(clock))
        for _ in range(n):
            sealer.seal("still", moment(clock), media=b"\xff\xd8jpeg", media_type="image/jpeg", ext="jpg")
            clock.mono += 5 * 10**8
            svc.log.pump()
            svc.anchorer.run_once()
        svc.close()
        vault.close()
        trust = AnchorTrust(tsa_roots=load_pem_certs(tsa.ca_file), ledger_keys=[ledger.verifier])
        t = time.perf_counter()
        base = check(Path(d) / "vault")
        t_base = time.perf_counter() - t
        t = time.perf_counter()
        full = check(Path(d) / "vault", checkers=[anchor_checker(trust)])
        t_full = time.perf_counter() - t
    return {"items": full.items, "ok": full.ok, "core_verify_us_per_item": round(t_base / full.items * 1e6),
            "core_plus_anchoring_us_per_item": round(t_full / full.items * 1e6), "core_ok": base.ok,
            "problems": full.problems[:3]}


def rekor_cost(batches: int, interval: str) -> dict[str, Any]:
    """Rekor v2 (rekor-tiles, POSIX) on 127.0.0.1: per batch, a bare submission (sign + POST + answer, the same
    RekorAnchor client) against full anchoring (that, plus the offline checks of entry, inclusion proof and log
    checkpoint, the receipt file and its sealed receipt record), interleaved in one run."""
    import statistics

    from agent.anchor.rekor import check_entry, log_verifier
    from agent.anchoring.rekor import RekorAnchor
    from tests.support.sigstore_servers import RekorV2

    rekor = RekorV2(checkpoint_interval=interval)
    try:
        with tempfile.TemporaryDirectory() as d:
            clock = SystemClock()
            chain = SyntheticChain(clock, "bench")
            key = ec.generate_private_key(ec.SECP256R1())
            signer = NoteSigner.from_private_key(ORIGIN, key)
            client = RekorAnchor(rekor.url, device_key=key.public_key(),
                                 sign=lambda b: key.sign(b, ec.ECDSA(hashes.SHA256())),
                                 log_keys=[log_verifier(rekor.origin, rekor.public_key_file.read_bytes())])
            anchorer = Anchorer([client], LogFiles(Path(d) / "log"), clock=clock,
                                seal_receipt=lambda extra: chain.seal("receipt", extra))
            bare, full, bare_cpu, full_cpu, check_cpu = [], [], [], [], []
            for i in range(batches):
                root = hashlib.sha256(b"%d" % i).digest()
                t, c = time.perf_counter(), time.process_time()
                client.post_entry(sign_note(Checkpoint(ORIGIN, 2 * i + 1, root).body(), signer).encode())
                bare.append(time.perf_counter() - t)
                bare_cpu.append(time.process_time() - c)
                cp = Checkpoint(ORIGIN, 2 * i + 2, root)
                t, c = time.perf_counter(), time.process_time()
                note = sign_note(cp.body(), signer)
                anchorer.offer(note, cp)
                assert anchorer.run_once() == 1
                full.append(time.perf_counter() - t)
                full_cpu.append(time.process_time() - c)
                rc = max(anchorer.files.receipts(), key=lambda r: r.checkpoint_size)
                c = time.process_time()
                check_entry(rc.data["transparency_log_entry"], note.encode(), key.public_key(), client.log_keys)
                check_cpu.append(time.process_time() - c)
    finally:
        rekor.close()
    # Rekor answers once a checkpoint covers the entry, so wall time is quantised by the checkpoint interval
    # (one or two intervals, depending on phase): compare means over many batches, and the client's CPU time.
    mb, mf = statistics.mean(bare), statistics.mean(full)
    cb, cf = statistics.median(bare_cpu), statistics.median(full_cpu)
    return {"batches": batches, "rekor_checkpoint_interval": interval,
            "bare_submission_mean_ms": round(mb * 1e3, 1), "anchoring_per_batch_mean_ms": round(mf * 1e3, 1),
            "wall_ratio_anchoring_to_bare": round(mf / mb, 3),
            "bare_client_cpu_median_us": round(cb * 1e6), "anchoring_client_cpu_median_us": round(cf * 1e6),
            "cpu_ratio_anchoring_to_bare": round(cf / cb, 2),
            "offline_check_cpu_median_us": round(statistics.median(check_cpu) * 1e6)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--million", action="store_true", help="also build a 10^6-leaf log")
    ap.add_argument("--interval", type=float, default=5.0, help="batch interval for the latency run (s)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rekor", action="store_true", help="only the Rekor v2 cost per batch (needs "
                    "scripts/build-test-servers.sh)")
    ap.add_argument("--rekor-batches", type=int, default=30)
    ap.add_argument("--rekor-interval", default="1s", help="rekor-server --checkpoint-interval")
    args = ap.parse_args()
    if args.rekor:
        print(json.dumps({"rekor": rekor_cost(args.rekor_batches, args.rekor_interval)}, indent=1))
        return
    tsa, ledger = LocalTsa(), LocalLedger()
    out: dict[str, Any] = {}
    try:
        out["requests_10k_fast"] = requests_per_10k(tsa, ledger, 0.1)  # batches close by count (256)
        out["requests_10k_slow"] = requests_per_10k(tsa, ledger, 5.0)  # batches close by time (60 s)
        with tempfile.TemporaryDirectory() as d:
            sizes = [1000, 100_000] + ([1_000_000] if args.million else [])
            out["proofs"] = [proof_sizes(n, Path(d)) for n in sizes]
        out["latency"] = seal_to_receipt_latency(tsa, ledger, args.interval, 12)
        out["full_verify"] = full_verify(tsa, ledger, 1000)
    finally:
        tsa.close()
        ledger.close()
    if args.json:
        print(json.dumps(out, indent=1))
        return
    for k, v in out.items():
        print(k, json.dumps(v, indent=1))


if __name__ == "__main__":
    main()

"""CLI: ``anchor-status VAULT`` and ``anchor-proof VAULT SEQ`` (read-only; safe while the agent runs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.anchor.bundle import export_log_files
from agent.anchor.log import LogFiles
from agent.anchor.note import NoteVerifier, parse_verifier_key
from agent.anchor.rekor import log_verifier
from agent.anchor.trustroot import load_trusted_root
from agent.anchor.tsa import load_pem_certs
from agent.anchor.verify import AnchorTrust
from agent.core.clock import iso_utc
from agent.core.errors import ConfigError, VaultError, VerificationError


def status(vault: Path) -> dict[str, Any]:
    files = LogFiles(vault / "log")
    leaves = files.dir / "leaves.bin"
    latest = files.latest_checkpoint()
    per: dict[str, dict[str, Any]] = {}
    for r in files.receipts():
        if r.checkpoint_size >= per.get(r.anchor, {}).get("checkpoint_size", -1):
            per[r.anchor] = {"checkpoint_size": r.checkpoint_size, "time": iso_utc(r.time_ns)}
    return {"log_size": leaves.stat().st_size // 32 if leaves.exists() else 0,
            "checkpoints": len(files.checkpoint_notes()),
            "latest_checkpoint": None if latest is None else latest[1].size,
            "anchors": per, "anchored_size": files.anchored_size()}


def cmd_status(args: argparse.Namespace) -> int:
    s = status(Path(args.vault))
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"log: {s['log_size']} records, {s['checkpoints']} checkpoints, newest covers {s['latest_checkpoint']}")
        for name, a in sorted(s["anchors"].items()):
            print(f"  {name}: checkpoint {a['checkpoint_size']} at {a['time']}")
        print(f"records below seq {s['anchored_size']} are anchored")
    return 0


def cmd_proof(args: argparse.Namespace) -> int:
    files = export_log_files(Path(args.vault), [args.seq])
    proofs = json.loads(files.get("log/proofs.json", b"{}"))
    p = proofs.get(str(args.seq))
    if p is None:
        raise VaultError(f"seq {args.seq} is not covered by a checkpoint yet")
    note = files[f"log/checkpoints/{p['tree_size']:012d}.note"].decode()
    print(json.dumps({"seq": args.seq, **p, "checkpoint": note}, indent=2))
    return 0


def rekor_key(value: str) -> NoteVerifier:
    """``--rekor-key ORIGIN=PEMFILE``: a Rekor log's checkpoint origin and its public key file."""
    origin, sep, path = value.partition("=")
    if not sep or not origin or not path:
        raise ConfigError(f"--rekor-key {value!r}: expected ORIGIN=PEMFILE (the log's --hostname and public key)")
    try:
        return log_verifier(origin, Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"--rekor-key {value!r}: cannot read {path}: {exc.strerror}") from None
    except VerificationError as exc:
        raise ConfigError(f"--rekor-key {value!r}: {exc}") from None


def trust_from(tsa_ca: list[str] | None, ledger_keys: list[str] | None, witness_notes: list[str] | None = None,
               *, rekor_keys: list[str] | None = None, trust_roots: list[str] | None = None,
               **tolerances: float) -> AnchorTrust:
    """AnchorTrust from CLI values: TSA root PEM files, ledger verifier keys, witness checkpoint note texts,
    Rekor logs as ORIGIN=PEMFILE, Sigstore TrustedRoot files (their logs and TSAs)."""
    roots = [c for f in tsa_ca or [] for c in load_pem_certs(Path(f))]
    keys: list[NoteVerifier] = [parse_verifier_key(k) for k in ledger_keys or []]
    keys += [rekor_key(v) for v in rekor_keys or []]
    for f in trust_roots or []:
        tr = load_trusted_root(Path(f))
        keys += tr.log_keys
        roots += tr.tsa_certs
    return AnchorTrust(tsa_roots=roots, ledger_keys=keys, witness_notes=list(witness_notes or []), **tolerances)


def register(subparsers: Any) -> None:
    """Add ``anchor-status`` and ``anchor-proof``."""
    s = subparsers.add_parser("anchor-status", help="Merkle log, checkpoints and anchor receipts of a vault")
    s.add_argument("vault", help="vault folder")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_status)
    p = subparsers.add_parser("anchor-proof", help="inclusion proof of one record in an (anchored) checkpoint")
    p.add_argument("vault", help="vault folder")
    p.add_argument("seq", type=int, help="sequence number of the record")
    p.set_defaults(func=cmd_proof)

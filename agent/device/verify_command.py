"""`evidence-agent verify`: a vault, a copy of its files, an item, a bundle or a lone JPEG/MP4, and its report.

Exit codes: 0 intact and trusted, 1 problems found, 2 bad usage, 3 intact but not trusted (``EXIT_*``).
Only the checks' own modules are imported (never the device runtime), so verify starts fast.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from agent.core.errors import ConfigError, VerificationError

if TYPE_CHECKING:
    from agent.anchor.verify import AnchorTrust
    from agent.signing.verify import Checker


def register(sub: Any) -> None:
    """Add ``verify`` to the ``evidence-agent`` subcommands."""
    v = sub.add_parser("verify", help="verify a vault, a copy of its files, one item, an export bundle, "
                                      "or a lone JPEG/MP4 from its embedded C2PA manifest",
                       epilog="exit codes: 0 intact and trusted (every record's certificate chains to a --ca, "
                              "and an inspection report's signer to an --officer-ca), 1 problems found, 2 bad "
                              "usage, 3 intact but not trusted (no --ca / --officer-ca vouches for a signer; "
                              "--allow-untrusted turns this into 0)")
    v.add_argument("path", help="vault folder, bundle zip, an item, or any JPEG/MP4 (renamed, without .rec)")
    v.add_argument("--against", metavar="VAULT_OR_BUNDLE",
                   help="lone file: also find its sealed record by SHA-256 here and check chain and anchoring")
    v.add_argument("--json", action="store_true", help="machine-readable report")
    v.add_argument("--ca", action="append", help="trusted CA certificate (PEM); may repeat. Without it intact "
                   "evidence exits 3 (intact but not trusted)")
    v.add_argument("--officer-ca", action="append", metavar="OFFICER_CA",
                   help="trusted officer CA certificate (PEM); may repeat. An inspection report is trusted only "
                        "when its signer's certificate chains to one and names the officer; without it the "
                        "report part is not trusted (exit 3)")
    v.add_argument("--allow-untrusted", action="store_true",
                   help="exit 0 for intact evidence even when no --ca vouches for the signer")
    v.add_argument("--crl", help="the customs CA's CRL (signed by a --ca): items sealed after their signer's "
                   "revocation are not trusted (exit 3)")
    v.add_argument("--tsa-ca", action="append", help="trusted RFC 3161 TSA root (PEM); may repeat")
    v.add_argument("--ledger-key", action="append", help="the ledger's signed-note verifier key; may repeat")
    v.add_argument("--rekor-key", action="append", metavar="ORIGIN=PEMFILE",
                   help="a Rekor v2 log's checkpoint origin and public key (PEM); may repeat")
    v.add_argument("--trust-root", action="append", metavar="FILE",
                   help="a Sigstore TrustedRoot JSON: trusts its Rekor logs and time-stamping authorities; may repeat")
    v.add_argument("--ledger-checkpoint", action="append",
                   help="a checkpoint note fetched from the ledger (detects a truncated tail); may repeat")
    v.set_defaults(func=cmd_verify)


def _print_report(report_json: dict[str, object]) -> None:
    r = report_json
    rev = r.get("revocation")
    if not r["ok"]:
        print(f"{r['path']}: FAILED — {len(r['problems'])} problem(s)")  # type: ignore[arg-type]
    elif isinstance(rev, dict) and rev.get("not_trusted"):
        print(f"{r['path']}: INTACT BUT NOT TRUSTED — {len(rev['not_trusted'])} item(s) sealed after the "
              f"signer's certificate was revoked ({rev['trusted_before']}); items before it are trusted")
    elif r.get("trusted"):
        print(f"{r['path']}: OK — intact and signed under the trusted CA {r.get('issuer')}")
    elif not r.get("devices_trusted"):
        print(f"{r['path']}: INTACT BUT NOT TRUSTED — signatures and chain hold, but no --ca vouches for the "
              f"signer (self-asserted issuer {r.get('issuer')}); anyone with a key could have made this")
    else:
        print(f"{r['path']}: INTACT BUT NOT TRUSTED — the device's records chain to the trusted CA "
              f"{r.get('issuer')}, but not every part is vouched for:")
        for u in r.get("untrusted") or []:  # type: ignore[attr-defined]
            print(f"  NOT TRUSTED  {u['item']}: {u['why']}")
    if r.get("devices"):
        print(f"  {r['items']} items ({r['mode']}) of {len(r['devices'])} devices, each chain checked on its own; "  # type: ignore[arg-type]
              f"{'chains checked against the trusted CA' if r['trusted_ca'] else 'no trusted CA given (--ca)'}")
    else:
        print(f"  {r['items']} items ({r['mode']}), seq {r['first_seq']}..{r['last_seq']}, "
              f"{r['first_time']} .. {r['last_time']}")
        print(f"  device {r['device_id']}, key {str(r['key_id'])[:16]}…, "
              f"{'chain checked against the trusted CA' if r['trusted_ca'] else 'no trusted CA given (--ca)'}")
    print(f"  kinds: {', '.join(f'{k} {n}' for k, n in sorted(dict(r['kinds']).items()))}")  # type: ignore[call-overload]
    for dev, d in dict(r.get("devices") or {}).items():  # type: ignore[call-overload]  # several devices
        print(f"  device {dev}: {'OK' if d['ok'] else 'FAILED'}, {d['items']} items, seq {d['first_seq']}.."
              f"{d['last_seq']}, {d['first_time']} .. {d['last_time']}")
    anchoring = r.get("anchoring")
    if isinstance(anchoring, dict):
        print(f"  anchoring: {len(anchoring.get('checkpoints', []))} checkpoint(s), "
              f"{len(anchoring.get('anchors', []))} anchor receipt(s)")
        for c in anchoring.get("coverage", []):
            proof = (f"existed no later than {c['existed_no_later_than']} ({c['anchor']})"
                     if c.get("existed_no_later_than") else "not yet anchored")
            print(f"    seq {c['seq_from']}..{c['seq_to']}: {proof}")
    rep = r.get("report")
    if isinstance(rep, dict):
        sealed = rep.get("sealed_at_seq")
        print(f"  report: case {rep.get('case')}, signed by {rep.get('officer')} "
              f"({'signature valid' if rep.get('signature_valid') else 'signature NOT valid'}), "
              f"{'officer CA ' + str(rep.get('officer_issuer')) if rep.get('officer_trusted') else 'NO officer CA'}, "
              f"{rep.get('items_present')}/{rep.get('items_listed')} listed items present, "
              + (f"hash sealed by the device at seq {sealed}" if sealed is not None
                 else "hash not sealed by the device"))
        if isinstance(rep.get("version"), int) and rep["version"] > 1:
            earlier = rep.get("superseded_sealed_at_seq")
            print(f"  report version {rep['version']}: supersedes manifest {str(rep.get('supersedes'))[:16]}… "
                  + (f"(sealed at seq {earlier})" if earlier is not None else "(not sealed in this bundle)")
                  + "; reason: " + "".join(c if c.isprintable() else "?" for c in str(rep.get("reason"))[:300]))
    for seg in r.get("segments") or []:  # type: ignore[attr-defined]
        gps = seg.get("gps_coverage")
        print(f"    segment seq {seg['seq']}: {seg['duration_s']} s, {seg['frames']} frames, {seg['start']} .. "
              f"{seg['end']}, GPS {gps if gps is not None else '-'}, events {', '.join(seg['events']) or 'none'}")
    for p in r["problems"]:  # type: ignore[attr-defined]
        print(f"  PROBLEM  {p['item']}: {p['problem']}")
    for w in r["warnings"]:  # type: ignore[attr-defined]
        print(f"  warning  {w['item']}: {w['warning']}")


def default_checkers(trust: AnchorTrust | None = None,
                     officer_cas: Sequence[x509.Certificate] = ()) -> list[Checker]:
    """Core checks plus anchoring, video segments (duration, frames, GPS coverage, events, gaps), stills (pixel
    size as claimed) and a signed inspection report when the evidence carries one (trusted only through
    ``officer_cas``)."""
    from agent.anchor.verify import AnchorTrust, anchor_checker
    from agent.signing.report import report_checker
    from agent.signing.still_checks import still_checker
    from agent.video.verify_segments import segment_checker

    return [anchor_checker(trust or AnchorTrust()), segment_checker(), still_checker(), report_checker(officer_cas)]


@dataclass(frozen=True)
class VerifyTrust:
    """The trust anchors ``verify`` was given, one field per option (a new anchor option adds a field)."""

    devices: list[x509.Certificate] = field(default_factory=list)  # --ca
    officers: list[x509.Certificate] = field(default_factory=list)  # --officer-ca


def _pem_certs(option: str, files: Sequence[str] | None) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for f in files or []:
        try:
            out.extend(x509.load_pem_x509_certificates(Path(f).read_bytes()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{option} {f}: cannot read a PEM certificate: {exc}") from None
    return out


def verify_trust(args: argparse.Namespace) -> VerifyTrust:
    return VerifyTrust(devices=_pem_certs("--ca", args.ca), officers=_pem_certs("--officer-ca", args.officer_ca))


def cmd_verify(args: argparse.Namespace) -> int:
    import gc

    from agent.signing.verify import check

    # One pass over N records keeps every checked item alive: with the default thresholds the cycle collector
    # walks that growing list again and again (~11 % of a 20 000-record run). Records hold no cycles; garbage
    # with cycles is still collected, only less often.
    gc.set_threshold(50_000, 20, 100)
    anchors = verify_trust(args)
    trusted = anchors.devices
    if not Path(args.path).exists():
        raise ConfigError(f"{args.path} does not exist (give a vault folder, a copy of its files, an item or a bundle)")
    witness = [Path(w).read_text() for w in args.ledger_checkpoint or []]
    checkers = default_checkers(_anchor_trust(args, witness), anchors.officers)
    checkers += _crl_checkers(args.crl, trusted)
    from agent.signing.lone import is_lone_candidate

    if args.against or is_lone_candidate(Path(args.path)):
        return _verify_lone(args, trusted, checkers)
    from agent.signing.progress import Progress

    try:
        with Progress(f"verifying {Path(args.path).name}") as bar:

            def tick(done: int, total: int) -> None:  # a bar redraw per 64 items, not per item
                if done == total or not done % 64:
                    bar.update(done, total)

            report = check(Path(args.path), trusted_ca=trusted, checkers=checkers, progress=tick)
    except VerificationError as exc:
        report_json = {"ok": False, "path": args.path, "items": 0,
                       "problems": [{"item": args.path, "problem": str(exc)}]}
        print(json.dumps(report_json, indent=2) if args.json else f"{args.path}: FAILED — {exc}")
        return 1
    doc = report.to_json()
    doc["exit_code"] = code = verify_exit_code(report.ok, report.fully_trusted, args.allow_untrusted)
    if code == EXIT_OK and (doc.get("revocation") or {}).get("not_trusted"):  # type: ignore[union-attr]
        doc["exit_code"] = code = EXIT_UNTRUSTED  # --allow-untrusted never vouches for a revoked signer
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_report(doc)
    return code


def _anchor_trust(args: argparse.Namespace, witness: list[str]) -> AnchorTrust:
    """What the anchor options name; without TSA, ledger, Rekor or TrustedRoot options the key-file readers
    (and the Sigstore models they load, ~0.1 s) are not imported."""
    from agent.anchor.verify import AnchorTrust

    if not (args.tsa_ca or args.ledger_key or args.rekor_key or args.trust_root):
        return AnchorTrust(witness_notes=witness)
    from agent.anchor.commands import trust_from

    return trust_from(args.tsa_ca, args.ledger_key, witness, rekor_keys=args.rekor_key, trust_roots=args.trust_root)


def _crl_checkers(crl: str | None, trusted: list[x509.Certificate]) -> list[Checker]:
    """``--crl FILE``: the customs CA's CRL, signed by a ``--ca``; items sealed after a revocation are not trusted."""
    if crl is None:
        return []
    from agent.signing.revocation import load_crls
    from agent.signing.revoked_items import revocation_checker

    if not trusted:
        raise ConfigError(f"--crl {crl}: needs the --ca that signed it")
    try:
        return [revocation_checker(load_crls(Path(crl), trusted))]
    except VerificationError as exc:
        raise ConfigError(f"--crl {exc}") from None


#: ``evidence-agent verify`` exit codes: intact and trusted, problems found, bad usage, intact but untrusted.
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_UNTRUSTED = 0, 1, 2, 3


def verify_exit_code(ok: bool, trusted: bool, allow_untrusted: bool) -> int:
    """0 only for intact *and* trusted evidence (or intact with --allow-untrusted)."""
    if not ok:
        return EXIT_PROBLEMS
    return EXIT_OK if trusted or allow_untrusted else EXIT_UNTRUSTED


def _verify_lone(args: argparse.Namespace, trusted: list[x509.Certificate], checkers: list[Checker]) -> int:
    """One JPEG/MP4 without its record: what its C2PA manifest proves, and (--against) where it was sealed."""
    from agent.signing.lone import check_lone, print_lone

    against = Path(args.against) if args.against else None
    if against is not None and not against.exists():
        raise ConfigError(f"--against {against}: no such vault or bundle")
    try:
        report = check_lone(Path(args.path), trusted_ca=trusted, against=against, checkers=checkers)
    except VerificationError as exc:
        print(json.dumps({"ok": False, "mode": "lone", "path": args.path, "problems": [str(exc)]}, indent=2)
              if args.json else f"{args.path}: FAILED — {exc}")
        return 1
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_lone(report)
    return verify_exit_code(report.ok, report.chain == "trusted", args.allow_untrusted)

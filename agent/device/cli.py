"""`evidence-agent` command line: demo, run, check-config, keys, verify, export, reindex, countersign, verify-pdf.

Exit codes: 0 success; 1 evidence problems, a failed run, or evidence left undelivered at
``--drain-timeout``; 2 usage or configuration errors (a missing or wrong file, certificate or key, a
path that does not exist), always as one line naming the file and what is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from agent import __version__
from agent.core.errors import AgentError, ConfigError, VerificationError

if TYPE_CHECKING:
    from agent.anchor.verify import AnchorTrust
    from agent.signing.verify import Checker

log = logging.getLogger("evidence-agent")


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.signing.keys import KEY_FILE, init_identity

    vault = Path(args.vault).resolve()
    keys = Path(args.keys).resolve() if args.keys else vault.with_name(vault.name + "-keys")
    for folder, what in ((vault, "vault"), (keys, "key")):
        _writable_or_exit(folder, what)
    settings: dict[str, object] = {
        "device": {"id": args.device_id, "site_id": args.site_id},
        "identity": {"key_dir": str(keys)},
        "vault": {"path": str(vault)},
        "capture": {"backend": "synthetic", "width": 640, "height": 360, "fps": 10,
                    "still_interval_s": args.still_interval},
        "gps": {"source": "simulated"},
        "video": {"enabled": not args.no_video, "segment_seconds": args.segment_seconds, "overlay": True},
        "anchor": {"batch_interval_s": 10},
    }
    if args.broker:
        settings["uplink"] = _demo_uplink(args, vault, keys)
    from agent.device.config import parse_config
    from agent.device.runner import run_agent

    cfg = parse_config(settings, "demo")
    if cfg.uplink is not None:
        _demo_permissions(cfg.uplink.commands.trust_dir)
    if not (keys / KEY_FILE).exists():
        init_identity(keys, cfg.device.id, cfg.device.organization)
        print(f"created device identity in {keys} (development CA)")
    print(f"demo: device {cfg.device.id} at site {cfg.device.site_id}, synthetic camera, simulated GPS, "
          f"{args.seconds:g} s into {vault}")
    rc = run_agent(cfg, args.seconds, args.drain_timeout if args.broker else None)
    from agent.signing.verify import check

    ca_file = keys / "ca.pem"
    trusted = x509.load_pem_x509_certificates(ca_file.read_bytes()) if ca_file.exists() else []
    report = check(vault, trusted_ca=trusted, checkers=default_checkers())
    segments = report.sections.get("segments") or []
    if segments:
        seconds = sum(float(s.get("duration_s") or 0) for s in segments)
        print(f"video: {len(segments)} sealed segments, {seconds:.1f} s")
    print(f"verify: {'OK' if report.ok else 'FAILED'} — {report.items} items, "
          f"{len(report.problems)} problems (run `evidence-agent verify {vault} --ca {ca_file}` for details)")
    return rc if report.ok else 1


def _writable_or_exit(folder: Path, what: str) -> None:
    """The demo creates its folders: say which one cannot be written, and how to choose another."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write the {what} folder {folder}: {exc.strerror or exc} "
                          f"(read-only? choose another with --{'vault' if what == 'vault' else 'keys'} PATH)") from None


def _demo_uplink(args: argparse.Namespace, vault: Path, keys: Path) -> dict[str, object]:
    """``--broker mqtt://host:port`` (plain, local) or ``mqtts://`` (mutual TLS with the device key)."""
    from agent.signing.keys import CERT_FILE, KEY_FILE
    from agent.wire.mqtt_settings import BrokerUrl

    url = BrokerUrl.parse(args.broker)
    mqtt: dict[str, object] = {"broker": args.broker, "client_id": args.device_id}
    if url.tls:
        if not args.broker_ca:
            raise ConfigError("--broker mqtts://... needs --broker-ca FILE (the broker's CA certificate)")
        mqtt["tls"] = {"ca_file": str(Path(args.broker_ca).resolve()), "cert_file": str(keys / CERT_FILE),
                       "key_file": str(keys / KEY_FILE)}
    return {"enabled": True, "mqtt": mqtt, "outbox_path": str(vault.with_name(vault.name + "-outbox.sqlite")),
            "require_subscriber": not args.no_subscriber_ok,
            "commands": {"trust_dir": str(Path(args.officers).resolve()) if args.officers else
                         str(vault.with_name(vault.name + "-officers"))}}


def _demo_permissions(folder: Path) -> None:
    """A demo device grants every command to the officer certificates put in its folder; a provisioned device
    grants only what its permissions.json lists (commands fail closed without one)."""
    from agent.core.fsutil import atomic_write
    from agent.wire.commands import PERMISSIONS_FILE

    path = folder / PERMISSIONS_FILE
    if not path.exists():
        atomic_write(path, b'{"*": ["*"]}\n')
        print(f"demo: {path} grants every command to each officer certificate (*.pem) in {folder}")


def cmd_run(args: argparse.Namespace) -> int:
    from agent.device.config import load_config
    from agent.device.runner import run_agent

    cfg = load_config(Path(args.config))
    return run_agent(cfg, args.seconds, args.drain_timeout)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Syntax and values, then everything the service needs (files, key, certificate): exit 2 on a problem."""
    from agent.device.preflight import preflight

    if args.config is None and args.file is None:
        raise ConfigError("check-config needs the config file: evidence-agent check-config --config FILE")
    if args.config is not None and args.file is not None and args.config != args.file:
        raise ConfigError(f"check-config: two config files given ({args.file}, --config {args.config})")
    if args.config is None:
        print(f"note: `check-config FILE` is the old form; use `evidence-agent check-config --config {args.file}` "
              "(as run, selftest and requeue take it)", file=sys.stderr)
    file = args.config or args.file
    from agent.device.config import load_config

    cfg = load_config(Path(file))
    problems = preflight(cfg)
    for p in problems:
        print(f"{'error' if p.fatal else 'warning'}: {file}: {p.text}", file=sys.stderr)
    if any(p.fatal for p in problems):
        return 2
    print(f"{file}: OK (device {cfg.device.id}, site {cfg.device.site_id}, camera {cfg.capture.backend}, "
          f"gps {cfg.gps.source})")
    return 0


def cmd_example_config(args: argparse.Namespace) -> int:
    if args.full:
        from agent.device.config_docs import full_toml

        print(full_toml(), end="")
    else:
        from agent.device.config import example_toml

        print(example_toml(), end="")
    return 0


def cmd_keys_init(args: argparse.Namespace) -> int:
    from agent.signing.keys import init_identity, load_identity

    key_dir = Path(args.key_dir)
    out = init_identity(key_dir, args.device_id, args.organization, csr=args.csr, force=args.force)
    if args.csr:
        print(f"wrote key and certificate signing request {out}; send it to the customs CA (`evidence-officer ca "
              f"sign-csr {out.name} --device {args.device_id} --site SITE`, docs/ca.md), then run "
              f"`evidence-agent keys install-cert --key-dir {key_dir} CERT CHAIN`")
    else:
        ident = load_identity(key_dir)
        print(f"wrote {out} (issued by a development CA); key id {ident.key_id}")
    return 0


def cmd_keys_install(args: argparse.Namespace) -> int:
    from agent.signing.keys import install_certificate

    install_certificate(Path(args.key_dir), Path(args.cert).read_bytes(), Path(args.chain).read_bytes())
    print(f"installed {args.cert} for the key in {args.key_dir}")
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    from agent.signing.keys import load_identity

    ident = load_identity(Path(args.key_dir))
    print(f"key id:  {ident.key_id}\nsubject: {ident.cert.subject.rfc4514_string()}\n"
          f"issuer:  {ident.cert.issuer.rfc4514_string()}\nexpires: {ident.cert.not_valid_after_utc.isoformat()}")
    return 0


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


def cmd_export(args: argparse.Namespace) -> int:
    from agent.evidence.export import export_bundle
    from agent.signing.progress import Progress

    with Progress(f"exporting {Path(args.out).name}") as bar:
        result = export_bundle(Path(args.vault), Path(args.out), since=args.since, until=args.until,
                               force=args.force, progress=lambda done, total: bar.update(done, total))
    print(f"wrote {args.out}: {result.items} items, seq {result.first_seq}..{result.last_seq}, "
          f"{result.bytes} bytes")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from agent.evidence.vault import Vault

    vault = Vault(Path(args.vault))
    try:
        n = vault.reindex()
    finally:
        vault.close()
    print(f"reindexed {n} records in {args.vault}")
    return 0


#: Commands this module defines; the others come from modules registered at the end of build_parser.
_OWN_COMMANDS = frozenset({"demo", "run", "check-config", "example-config", "keys", "verify", "export", "reindex"})


def build_parser(*, only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; ``only`` = one of this module's own commands leaves the other modules' commands out
    (they import the device runtime: ~0.4 s of CPU before ``verify`` reads its first record)."""
    p = argparse.ArgumentParser(prog="evidence-agent", description="Certified evidence camera agent")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run on embedded defaults (synthetic camera, simulated GPS, local vault)")
    d.add_argument("--vault", default="demo-vault", help="vault folder (default: ./demo-vault)")
    d.add_argument("--keys", help="key folder (default: <vault>-keys beside the vault)")
    d.add_argument("--seconds", type=float, default=20.0, help="how long to record (default 20)")
    d.add_argument("--device-id", default="demo-device", help="device id (default demo-device)")
    d.add_argument("--site-id", default="demo-site", help="site id (default demo-site)")
    d.add_argument("--still-interval", type=float, default=2.0, help="seconds between stills (default 2)")
    d.add_argument("--segment-seconds", type=float, default=5.0, help="video segment length (default 5)")
    d.add_argument("--no-video", action="store_true", help="stills only")
    d.add_argument("--broker", help="publish to an MQTT broker: mqtt://host:port (plain) or mqtts://host:port (TLS)")
    d.add_argument("--broker-ca", help="CA certificate of an mqtts:// broker")
    d.add_argument("--drain-timeout", type=float, default=60.0,
                   help="with --broker: seconds to wait for everything to be delivered (default 60); exit 1 if not")
    d.add_argument("--officers", help="folder of trusted officer certificates (default: <vault>-officers)")
    d.add_argument("--no-subscriber-ok", action="store_true",
                   help="count a publish with no subscriber (no ingest running) as delivered")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", help="run as a service from a config file")
    r.add_argument("--config", required=True, help="TOML config file (evidence-agent example-config)")
    r.add_argument("--seconds", type=float, default=None, help="stop after N seconds (default: until SIGTERM)")
    r.add_argument("--drain-timeout", type=float, default=None,
                   help="at the stop, wait up to N seconds for the broker to acknowledge everything; "
                        "exit 1 if evidence is left undelivered")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("check-config", help="validate a config file and the files it names: key, certificate "
                                            "(CN, extended key usages, expiry), TLS files (exit 2 on errors)")
    c.add_argument("--config", help="TOML config file to validate (as for run, selftest, requeue)")
    c.add_argument("file", nargs="?", help=argparse.SUPPRESS)  # the old positional form, still accepted
    c.set_defaults(func=cmd_check_config)
    ex = sub.add_parser("example-config", help="print an example config (--full: every key at its default)")
    ex.add_argument("--full", action="store_true",
                    help="every key with its description and default (reference: docs/configuration.md)")
    ex.set_defaults(func=cmd_example_config)

    k = sub.add_parser("keys", help="device identity").add_subparsers(dest="keys_command", required=True)
    ki = k.add_parser("init", help="create the device key and certificate (or a CSR)")
    ki.add_argument("--key-dir", required=True, help="folder for device.key (0600), device.pem and ca.pem")
    ki.add_argument("--device-id", required=True, help="device id: the certificate's CN")
    ki.add_argument("--organization", default="Demo Enterprise", help="enterprise: the certificate's O")
    ki.add_argument("--csr", action="store_true", help="write a CSR for the customs CA instead of a dev certificate")
    ki.add_argument("--force", action="store_true", help="replace an existing key")
    ki.set_defaults(func=cmd_keys_init)
    kc = k.add_parser("install-cert", help="install the certificate the customs CA issued for the CSR")
    kc.add_argument("--key-dir", required=True, help="the folder holding the key the CSR was made for")
    kc.add_argument("cert", help="the device certificate the customs CA issued (PEM)")
    kc.add_argument("chain", help="the issuing CA certificate(s), intermediates first (PEM)")
    kc.set_defaults(func=cmd_keys_install)
    ks = k.add_parser("show", help="print key id and certificate")
    ks.add_argument("--key-dir", required=True, help="folder with the device key and certificate")
    ks.set_defaults(func=cmd_keys_show)

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

    e = sub.add_parser("export", help="write a self-contained evidence bundle (zip)")
    e.add_argument("vault", help="the vault folder to export from")
    e.add_argument("--out", required=True, help="bundle file to write (.zip); refused if it exists, unless --force")
    e.add_argument("--force", action="store_true", help="replace an existing --out file")
    e.add_argument("--since", help="first capture time to include, ISO 8601 (UTC if no offset), inclusive")
    e.add_argument("--until", help="last capture time to include, ISO 8601 (UTC if no offset), inclusive")
    e.set_defaults(func=cmd_export)

    x = sub.add_parser("reindex", help="rebuild the vault's SQLite index from its files")
    x.add_argument("vault", help="vault folder")
    x.set_defaults(func=cmd_reindex)
    if only in _OWN_COMMANDS:
        return p

    from agent.anchor import commands as anchor_commands
    from agent.device import requeue
    from agent.gps import commands as gps_commands
    from agent.hostsetup import provision
    from agent.hostsetup.install_system import register as register_install_system
    from agent.pades import commands as pades_commands
    from agent.selftest import command as selftest_cmd

    gps_commands.register(sub)
    anchor_commands.register(sub)
    selftest_cmd.register(sub)
    provision.register(sub)
    register_install_system(sub)
    requeue.register(sub)
    pades_commands.register(sub)
    return p


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(only=_command_of(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rc: int = args.func(args)
        return rc
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the command needs: one line naming it, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

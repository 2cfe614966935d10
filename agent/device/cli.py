"""`evidence-agent` command line: demo, run, check-config, keys, verify, export, reindex, countersign, verify-pdf.

Exit codes: 0 success; 1 evidence problems, a failed run, or evidence left undelivered at
``--drain-timeout``; 2 usage or configuration errors (a missing or wrong file, certificate or key, a
path that does not exist), always as one line naming the file and what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.core.errors import AgentError, ConfigError
from agent.device import demo_command, verify_command

log = logging.getLogger("evidence-agent")


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

    demo_command.register(sub)

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

    verify_command.register(sub)

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

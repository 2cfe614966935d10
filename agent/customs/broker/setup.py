"""``evidence-officer broker-setup OUTDIR``: a customs broker's mosquitto.conf, ACL and certificate layout.

One fleet CA issues the broker's server certificate, the TLS client certificates of the ingest and
officer accounts and (for a lab or a first batch) device identities whose subject CN is the device id:
the same certificate signs the device's evidence and authenticates it to the broker, so ``%u`` in the
ACL, the topic's device level and the record's ``device_id`` are one name. Re-running adds what is
missing and keeps the CA (never a new CA under an existing fleet).

Every device is registered to one site (``--device ID=SITE``, ``--registry FILE``; kept in
``OUTDIR/registry.toml``): the ACL lets it publish only its fixed channel topics under that site, officers
command only registered devices, and the dynamic-security rules (``dynsec.json``) refuse ``$share/...``
subscriptions to every device and officer.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import glob
import ipaddress
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.customs.broker import render_acl, render_conf, render_dynsec
from agent.customs.broker.console_setup import write_console
from agent.customs.broker.registry import REGISTRY_FILE, Registry, load_registry, parse_pair
from agent.signing.keys import CA_FILE, CERT_FILE, KEY_FILE, issue_leaf, load_p256_key, make_ca
from agent.wire.topics import check_segment


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    atomic_write(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), mode=0o600)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _fleet_ca(out: Path, org: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = out / "ca" / "ca.key", out / "ca" / "ca.pem"
    if key_path.exists():
        return load_p256_key(key_path, "fleet CA key", "evidence-officer broker-setup"), \
            x509.load_pem_x509_certificate(cert_path.read_bytes())
    (out / "ca").mkdir(parents=True, exist_ok=True)
    os.chmod(out / "ca", 0o700)
    key, cert = make_ca(f"{org} Evidence Fleet CA", org)
    _write_key(key_path, key)
    atomic_write(cert_path, _pem(cert))
    return key, cert


def _server(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], host: str
            ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    with contextlib.suppress(ValueError):
        names = [x509.IPAddress(ipaddress.ip_address(host))]
    if host == "localhost":
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca[1].subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[0].public_key()), critical=False)
            .sign(ca[0], hashes.SHA256()))
    return cert, key


def _issue(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], folder: Path, cn: str, org: str, unit: str,
           eku: tuple[x509.ObjectIdentifier, ...] | None, key_name: str, cert_name: str) -> bool:
    if (folder / cert_name).exists():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit)])
    _write_key(folder / key_name, key)
    atomic_write(folder / cert_name, _pem(issue_leaf(ca[0], ca[1], subject, key.public_key(), eku=eku)))
    return True


DYNSEC_PLUGIN_GLOBS = ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
                       "/usr/local/lib/mosquitto_dynamic_security.so", "/usr/lib64/mosquitto_dynamic_security.so")


def find_dynsec_plugin(given: Path | None = None) -> Path:
    """Mosquitto's dynamic-security plugin (Debian: in the mosquitto package); ConfigError if absent."""
    if given is not None:
        if not given.is_file():
            raise ConfigError(f"--dynsec-plugin: {given} does not exist")
        return given
    for pattern in DYNSEC_PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    raise ConfigError("mosquitto_dynamic_security.so not found (it comes with mosquitto 2.x; give its path with "
                      "--dynsec-plugin): without it any device could join the ingest's shared subscription")


def registrations(out: Path, devices: list[str], registry_file: Path | None
                  ) -> tuple[Registry, list[str], list[str]]:
    """OUTDIR/registry.toml, then ``--registry``, then ``--device ID=SITE``: (registry, device ids to issue,
    one line per device that changes site)."""
    kept = out / REGISTRY_FILE
    before = load_registry(kept) if kept.exists() else Registry()
    reg = before
    if registry_file is not None:
        reg = reg.merged(load_registry(registry_file).sites.items())
    issue = []
    for text in devices:
        device, site = parse_pair(text)
        if site is None:
            if reg.site_of(device) is None:
                raise ConfigError(f"--device {device}: which site? give --device {device}=SITE (a device "
                                  "publishes only under its registered site)")
        else:
            reg = reg.merged([(device, site)])
        issue.append(device)
    moves = [f"registration: {d} moves from site {before.sites[d]} to {s} (restart the broker)"
             for d, s in sorted(reg.sites.items()) if d in before.sites and before.sites[d] != s]
    return reg, issue, moves


def broker_setup(out: Path, *, host: str = "localhost", port: int = 8883, bind: str = "0.0.0.0",
                 officers: list[str], ingests: list[str], devices: list[str], org: str = "Customs",
                 run_as: str | None = None, max_packet_size: int = 1 << 20, registry: Path | None = None,
                 dynsec_plugin: Path | None = None, crl: Path | None = None, admins: list[str] | None = None,
                 consoles: list[str] | None = None) -> list[str]:
    """Write (or complete) the layout; returns what was created, one line each.

    ``devices``: ``ID=SITE`` (or ``ID`` when already registered) for each device identity to issue."""
    admins, consoles = admins or [], consoles or []
    officers = [*officers, *(c for c in consoles if c not in officers)]  # a console's officer is an account
    for name in [*officers, *ingests, *admins]:
        try:
            check_segment(name, "account name")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    crl_text = "" if crl is None else crl_line(crl)
    out = out.resolve()
    plugin = find_dynsec_plugin(dynsec_plugin)
    reg, devices, moves = registrations(out, devices, registry)
    clash = sorted(set(reg.sites) & {*officers, *ingests})
    if clash:
        raise ConfigError(f"{clash[0]!r} is both a device and an account name")
    out.mkdir(parents=True, exist_ok=True)
    done: list[str] = list(moves)
    new_ca = not (out / "ca" / "ca.key").exists()
    ca = _fleet_ca(out, org)
    if new_ca:
        done.append(f"fleet CA {out / 'ca' / 'ca.pem'} (key ca/ca.key, 0600: keep it offline)")
    if not (out / "server" / "server.pem").exists():
        cert, key = _server(ca, host)
        (out / "server").mkdir(exist_ok=True)
        _write_key(out / "server" / "server.key", key)
        atomic_write(out / "server" / "server.pem", _pem(cert))
        done.append(f"broker certificate for {host}")
    client_eku = (ExtendedKeyUsageOID.CLIENT_AUTH,)
    for role, names in (("ingest", ingests), ("officer", officers)):
        for name in names:
            if _issue(ca, out / "clients", name, org, f"evidence-{role}", client_eku, f"{name}.key", f"{name}.pem"):
                done.append(f"{role} TLS certificate clients/{name}.pem")
    for device in devices:
        folder = out / "devices" / device
        if _issue(ca, folder, device, org, "evidence-camera", None, KEY_FILE, CERT_FILE):
            atomic_write(folder / CA_FILE, _pem(ca[1]))
            done.append(f"device identity devices/{device}/ (key_dir for the device: signs evidence, TLS client)")
    atomic_write(out / REGISTRY_FILE, reg.dump().encode())
    atomic_write(out / "acl.conf", render_acl(officers, ingests, reg.sites, admins).encode())
    atomic_write(out / "dynsec.json", render_dynsec([*officers, *admins], ingests, list(reg.sites)).encode())
    (out / "data").mkdir(exist_ok=True)
    user = run_as or getpass.getuser()
    conf = render_conf({"user_line": f"user {user}", "data_dir": out / "data", "log_file": out / "mosquitto.log",
                        "port": port, "bind": bind, "cafile": out / "ca" / "ca.pem",
                        "certfile": out / "server" / "server.pem", "keyfile": out / "server" / "server.key",
                        "acl_file": out / "acl.conf", "max_packet_size": max_packet_size,
                        "dynsec_plugin": plugin, "dynsec_file": out / "dynsec.json"})
    for officer in consoles:
        done += write_console(out, officer, f"mqtts://{host}:{port}")
    conf += crl_text  # last: the listener block refuses client certificates the customs CA revoked
    atomic_write(out / "mosquitto.conf", conf.encode())
    done.append(f"{out / 'mosquitto.conf'}, {out / 'acl.conf'} and dynsec.json ({len(officers)} officer(s), "
                f"{len(ingests)} ingest account(s), {len(reg.sites)} registered device(s) in {REGISTRY_FILE})")
    return done


def crl_line(crl: Path) -> str:
    """``crlfile`` for the listener: the CRL must exist, and hold a CRL of every CA issuing client certificates."""
    if not crl.is_file():
        raise ConfigError(f"--crl {crl}: no such file (publish one first: evidence-officer ca crl)")
    return ("# Client certificates revoked by the customs CA (evidence-officer ca crl); Mosquitto re-reads it on\n"
            "# SIGHUP: `systemctl reload mosquitto` after publishing a new one (docs/ca.md).\n"
            f"crlfile {crl.resolve()}\n")


def _cmd(args: argparse.Namespace) -> int:
    done = broker_setup(Path(args.outdir), host=args.host, port=args.port, bind=args.bind,
                        officers=args.officer or [], ingests=args.ingest or ["ingest-1"], devices=args.device or [],
                        org=args.org, run_as=args.run_as, max_packet_size=args.max_packet_size,
                        registry=args.registry, dynsec_plugin=args.dynsec_plugin, crl=args.crl,
                        admins=args.admin or [], consoles=args.console or [])
    for line in done:
        print(f"wrote {line}")
    print(f"start it: mosquitto -c {Path(args.outdir).resolve() / 'mosquitto.conf'}")
    return 0


def register(subparsers: Any) -> None:
    """``evidence-officer broker-setup OUTDIR [--officer NAME]... [--ingest NAME]... [--device ID]...``."""
    p = subparsers.add_parser("broker-setup", help="write a customs broker's mosquitto.conf, least-privilege "
                              "ACL and fleet certificates")
    p.add_argument("outdir", type=Path, help="folder to write the broker configuration, ACL and certificates into")
    p.add_argument("--host", default="localhost", help="broker host name (server certificate)")
    p.add_argument("--port", type=int, default=8883, help="TLS listener port (default 8883)")
    p.add_argument("--bind", default="0.0.0.0", help="listen address")
    p.add_argument("--officer", action="append", help="officer account (TLS CN); repeatable")
    p.add_argument("--ingest", action="append", help="ingest account (TLS CN); repeatable; default ingest-1")
    p.add_argument("--device", action="append", metavar="ID=SITE",
                   help="register a device to its site and issue its identity (CN = device id); repeatable; "
                   "a bare ID only when already registered")
    p.add_argument("--registry", type=Path, metavar="FILE", help="register devices from a TOML file "
                   "([devices] ID = \"SITE\"), e.g. devices provisioned with their own CSR")
    p.add_argument("--dynsec-plugin", type=Path, metavar="PATH",
                   help="mosquitto_dynamic_security.so (default: found under /usr/lib)")
    p.add_argument("--org", default="Customs", help="organisation in certificate subjects")
    p.add_argument("--run-as", help="user mosquitto runs as (default: the current user)")
    p.add_argument("--max-packet-size", type=int, default=1 << 20, help="bytes; devices chunk media to fit")
    p.add_argument("--admin", action="append", help="fleet-admin account (CN of `evidence-officer ca issue-admin`): "
                   "the only writer of the officer trust topic; repeatable")
    p.add_argument("--console", action="append", metavar="OFFICER", help="write console-OFFICER/ with a working "
                   "console.toml and every file it names (docs/console.md); the officer account is issued too")
    p.add_argument("--crl", type=Path, help="the customs CA's CRL (evidence-officer ca crl): the broker refuses "
                   "revoked client certificates (crlfile)")
    p.set_defaults(func=_cmd)

"""`evidence-agent provision`: key, CSR, issued certificate, broker CA, config, services, marker.

Every step compares what is there with what is wanted and only then acts, so the command is safe
to re-run: a second run prints ``unchanged`` everywhere. The device key is created once and never
replaced (a new key would orphan the evidence chain). A changed config is saved as
``<name>.bak-<UTC time>`` first, and settings a technician added by hand are kept.
See docs/provisioning.md (including where a PKCS#11 / TPM key plugs in).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from cryptography import x509

from agent.core.errors import AgentError, ConfigError
from agent.core.vocab import ID_PATTERN
from agent.device.config import parse_config
from agent.hostsetup.changes import Change
from agent.hostsetup.device_files import ADMIN_CERT, admin_cert, ensure_dir, ensure_officers, officer_cert, put_file
from agent.hostsetup.identity import ensure_certificate, ensure_key
from agent.signing import keys
from agent.wire.mqtt_settings import BrokerUrl

SERVICE = "evidence-agent.service"
MARKER = "provisioned"
BROKER_CA = "broker-ca.pem"
DEFAULT_ORG = "Evidence Agent Operator"
SECTION_ORDER = ("device", "identity", "vault", "capture", "gps", "time", "gpio", "uplink", "anchor")
HEADER = "# Written by `evidence-agent provision`; re-running it keeps settings added here by hand.\n"


@dataclass(frozen=True)
class Plan:
    """Where everything goes: the paths the config names (the device's view); ``local()`` gives where
    this run writes them (under ``root`` when preparing an image or testing)."""

    root: Path
    state_dir: Path
    config_out: Path
    key_dir: Path
    vault: Path
    outbox: Path
    marker: Path
    broker_ca: Path
    officers: Path
    trust_admin: Path | None = None

    @classmethod
    def at(cls, root: Path, state_dir: Path, config_out: Path, *, pushed_trust: bool = False) -> Plan:
        """With pushed trust (``--trust-admin``) the officer folder is state the agent replaces itself."""
        etc = config_out.parent
        return cls(root, state_dir, config_out, key_dir=state_dir / "keys", vault=state_dir / "vault",
                   outbox=state_dir / "outbox.sqlite", marker=state_dir / MARKER, broker_ca=etc / BROKER_CA,
                   officers=(state_dir if pushed_trust else etc) / "officers",
                   trust_admin=etc / ADMIN_CERT if pushed_trust else None)

    def local(self, target: Path) -> Path:
        return self.root / target.relative_to("/") if self.root != Path("/") else target


# -- files -------------------------------------------------------------------------------------
def to_toml(data: dict[str, Any]) -> str:
    """The config as TOML (tomli-w, the writer beside the standard library's tomllib reader)."""
    try:
        return tomli_w.dumps(data)
    except TypeError as exc:
        raise ConfigError(f"cannot write the config as TOML: {exc}") from None


def _merge(base: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in wanted.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(existing: dict[str, Any], plan: Plan, *, device_id: str, site_id: str, organization: str,
                 broker: str, camera: str | None, gps: str | None, camera_source: str | None = None
                 ) -> dict[str, Any]:
    """Provisioning owns identity, paths and the uplink; everything else a technician set is kept."""
    owned: dict[str, Any] = {
        "device": {"id": device_id, "site_id": site_id, "organization": organization},
        "identity": {"key_dir": str(plan.key_dir)},
        "vault": {"path": str(plan.vault)},
        "uplink": {"enabled": True, "outbox_path": str(plan.outbox),
                   "mqtt": {"broker": broker, "client_id": device_id,
                            "tls": {"ca_file": str(plan.broker_ca), "cert_file": str(plan.key_dir / keys.CERT_FILE),
                                    "key_file": str(plan.key_dir / keys.KEY_FILE)}}},
    }
    defaults = {"capture": {"backend": "picamera2"}, "gps": {"source": "gpsd"},
                "uplink": {"commands": {"trust_dir": str(plan.officers)}}}
    if plan.trust_admin is not None:  # pushed trust: the agent must be able to replace its officer folder
        owned["uplink"]["commands"] = {"trust_dir": str(plan.officers), "trust_admin": str(plan.trust_admin)}
    chosen: dict[str, Any] = {}
    if camera is not None:
        chosen["capture"] = {"backend": camera}
    if camera_source is not None:
        chosen.setdefault("capture", {})["source"] = int(camera_source) if camera_source.isdigit() else camera_source
    if gps is not None:
        chosen["gps"] = {"source": gps}
    merged = _merge(_merge(_merge(defaults, existing), owned), chosen)
    return {k: merged[k] for k in sorted(merged, key=lambda k: (SECTION_ORDER.index(k) if k in SECTION_ORDER
                                                                 else len(SECTION_ORDER), k))}


def _read_existing(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: existing config is unreadable ({exc}); fix or move it, then re-run") from None


# -- system ------------------------------------------------------------------------------------
def enable_service(plan: Plan, *, enable: bool, ready: bool) -> Change:
    cmd = ["systemctl", "enable", SERVICE]
    if not ready:
        return Change("skipped", " ".join(cmd), "not enabled until the device certificate is installed")
    if not enable or plan.root != Path("/"):
        return Change("would run", " ".join(cmd), "--no-enable" if not enable else f"--root {plan.root}")
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return Change("skipped", " ".join(cmd), "systemctl not found")
    state = subprocess.run([systemctl, "is-enabled", SERVICE], capture_output=True, text=True, check=False)
    if state.stdout.strip() == "enabled":
        return Change("unchanged", " ".join(cmd), "already enabled")
    done = subprocess.run([systemctl, "enable", SERVICE], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AgentError(f"systemctl enable {SERVICE} failed: {done.stderr.strip()}")
    return Change("ran", " ".join(cmd))


def hand_over(plan: Plan, user: str) -> Change:
    """As root on the device: the service user owns the state and may read the config."""
    if os.geteuid() != 0 or plan.root != Path("/"):
        return Change("skipped", f"ownership for user {user}", "not root" if os.geteuid() else f"--root {plan.root}")
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return Change("skipped", f"ownership for user {user}", "no such user (run systemd-sysusers first)")
    wanted: list[tuple[str, int, int]] = []
    for dirpath, _dirs, files in os.walk(plan.state_dir):
        wanted += [(p, pw.pw_uid, pw.pw_gid) for p in [dirpath, *(os.path.join(dirpath, f) for f in files)]]
    etc_files = (plan.config_out.parent, plan.config_out, plan.broker_ca, plan.officers, plan.trust_admin)
    wanted += [(str(p), 0, pw.pw_gid) for p in etc_files
               if p is not None and p.exists() and not p.is_relative_to(plan.state_dir)]
    changed = 0
    for path, uid, gid in wanted:
        st = os.lstat(path)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(path, uid, gid, follow_symlinks=False)
            changed += 1
    note = f"{plan.state_dir} owned by {user}, config readable by group {user}"
    return Change("updated" if changed else "unchanged", f"ownership for user {user}",
                  f"{note}; {changed} path(s) changed" if changed else note)


# -- the command -------------------------------------------------------------------------------
def _refuse_unfit(cert: x509.Certificate, path: Path, device_id: str) -> None:
    """The checks `check-config` makes: a certificate the service could not use is refused here already."""
    from agent.device.preflight import check_certificate

    fatal = [p.text for p in check_certificate(cert, path, device_id, c2pa=True) if p.fatal]
    if fatal:
        raise ConfigError("; ".join(fatal))


def provision(args: argparse.Namespace) -> list[Change]:
    """Every folder and file gets an explicit mode; the umask is 022 meanwhile so nothing else can be looser."""
    old = os.umask(0o022)
    try:
        return _provision(args)
    finally:
        os.umask(old)


def _provision(args: argparse.Namespace) -> list[Change]:
    args.enroll_cmd = args.enroll_cmd or None  # an empty value (unset variable in a unit file) means none
    device_id = args.device_id or socket.gethostname().split(".")[0]
    for name, value in (("--site", args.site), ("--device-id", device_id)):
        if not re.match(ID_PATTERN, value):
            raise ConfigError(f"{name} {value!r}: use letters, digits, '.', '_' or '-' (at most 63)")
    url = BrokerUrl.parse(args.broker)
    if not url.tls:
        raise ConfigError(f"--broker {args.broker}: a provisioned device talks to the customs broker over TLS "
                          "(mqtts://host:port)")
    if (args.cert is None) != (args.chain is None):
        raise ConfigError("--cert and --chain go together")
    if args.dev_ca and (args.cert or args.enroll_cmd):
        raise ConfigError("--dev-ca issues a development certificate; it cannot be combined with --cert/--enroll-cmd")
    try:
        ca_pem = Path(args.ca).read_bytes()
        x509.load_pem_x509_certificates(ca_pem)
        cert_pem = Path(args.cert).read_bytes() if args.cert else None
        chain_pem = Path(args.chain).read_bytes() if args.chain else None
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"--ca {args.ca}: not a PEM certificate: {exc}") from None
    admin_pem = admin_cert(Path(args.trust_admin)) if args.trust_admin else None
    root = Path(args.root).resolve() if args.root else Path("/")
    plan = Plan.at(root, Path(args.state_dir).absolute(), Path(args.config_out).absolute(),
                   pushed_trust=admin_pem is not None)
    key_dir = plan.local(plan.key_dir)
    config_path = plan.local(plan.config_out)
    existing = _read_existing(config_path)
    capture = {**existing.get("capture", {}), **({"backend": args.camera} if args.camera else {}),
               **({"source": args.camera_source} if args.camera_source else {})}
    if capture.get("backend") == "opencv" and not capture.get("source"):
        raise ConfigError("--camera opencv needs --camera-source: a V4L2 index (0), /dev/videoN, an rtsp:// or "
                          "http(s):// URL or a video file (nothing was written)")
    organization = args.organization or existing.get("device", {}).get("organization") or DEFAULT_ORG

    if cert_pem is not None:  # before anything is installed: CN, extended key usages, validity
        _refuse_unfit(x509.load_pem_x509_certificate(cert_pem), Path(args.cert), device_id)
    for path in args.officer or []:
        officer_cert(Path(path))  # refused before anything is written
    folders = [ensure_dir(config_path.parent, 0o755), ensure_dir(plan.local(plan.state_dir), 0o700),
               ensure_dir(key_dir, 0o700)]
    changes = [c for c in folders if c is not None]
    changes += ensure_key(key_dir, device_id, organization, dev_ca=args.dev_ca)
    cert_change = ensure_certificate(key_dir, cert_pem, chain_pem, args.enroll_cmd)
    changes.append(cert_change)
    ready = cert_change.action != "pending"
    if ready:
        identity = keys.load_identity(key_dir)  # key and certificate belong together and parse
        _refuse_unfit(identity.cert, key_dir / keys.CERT_FILE, device_id)
    changes.append(put_file(plan.local(plan.broker_ca), ca_pem, note="broker CA"))
    officers = plan.local(plan.officers)
    made = ensure_dir(officers, 0o755)
    changes.append(made or Change("unchanged", str(officers), "officer certificates (*.pem) and permissions"))
    changes += ensure_officers(officers, args.officer or [])
    if admin_pem is not None and plan.trust_admin is not None:
        changes.append(put_file(plan.local(plan.trust_admin), admin_pem,
                                note="fleet-admin certificate: signed officer trust bundles replace officers/"))

    data = build_config(existing, plan, device_id=device_id, site_id=args.site, organization=organization,
                        broker=str(url), camera=args.camera, gps=args.gps, camera_source=args.camera_source)
    parse_config(data, str(config_path))  # the file written must pass check-config
    changes.append(put_file(config_path, (HEADER + to_toml(data)).encode(), mode=0o640, note="agent config",
                            same=existing == data if existing else None))
    marker = {"device_id": device_id, "site_id": args.site, "broker": str(url),
              "certificate": "installed" if ready else "pending"}
    marker_path = plan.local(plan.marker)
    same_marker = None
    if marker_path.exists():
        try:
            same_marker = json.loads(marker_path.read_text() or "{}") == marker
        except ValueError:
            same_marker = False
    changes.append(put_file(marker_path, json.dumps(marker, indent=2).encode() + b"\n", note="provisioning marker",
                            same=same_marker, backup=False))
    changes.append(hand_over(plan, args.user))
    changes.append(enable_service(plan, enable=not args.no_enable, ready=ready))
    return changes


def cmd_provision(args: argparse.Namespace) -> int:
    changes = provision(args)
    for c in changes:
        print(c.line())
    if not any(c.changed for c in changes):
        print("nothing changed: this device is already provisioned")
    if any(c.action == "pending" for c in changes):
        print("certificate pending: the agent cannot sign or reach the broker until it is installed")
    else:
        print(f"next: evidence-agent selftest --config {args.config_out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("provision", help="create the device key, CSR/certificate, config; enable the service "
                                                "(safe to re-run)")
    p.add_argument("--site", required=True, help="registered inspection site id")
    p.add_argument("--broker", required=True, help="customs broker, mqtts://host:port")
    p.add_argument("--ca", required=True, help="CA certificate(s) of the broker (PEM)")
    p.add_argument("--device-id", help="device id = certificate CN = MQTT identity (default: the hostname)")
    p.add_argument("--organization", help=f"enterprise name for the certificate (default: {DEFAULT_ORG})")
    p.add_argument("--state-dir", default="/var/lib/evidence-agent", help="keys, vault, outbox (default %(default)s)")
    p.add_argument("--config-out", default="/etc/evidence-agent/agent.toml", help="config file (default %(default)s)")
    p.add_argument("--cert", help="certificate the customs CA issued for the CSR (PEM)")
    p.add_argument("--chain", help="the issuing CA chain (PEM)")
    p.add_argument("--dev-ca", action="store_true", help="self-issue from a development CA (labs, demos)")
    p.add_argument("--enroll-cmd", help="command run with the CSR path appended; prints the PEM certificate and chain")
    p.add_argument("--camera", choices=["picamera2", "opencv", "synthetic"],
                   help="capture backend (default: picamera2, or what the config already says)")
    p.add_argument("--gps", choices=["gpsd", "serial", "simulated", "disabled"],
                   help="GPS source (default: gpsd, or what the config already says)")
    p.add_argument("--officer", action="append", metavar="CERT",
                   help="an officer certificate (evidence-officer keys init) to trust with every command; "
                        "repeatable; listed in officers/permissions.json (which grants only what it lists)")
    p.add_argument("--camera-source", help="opencv: V4L2 index, /dev/videoN, rtsp:// or http(s):// URL or a video "
                   "file (required with --camera opencv)")
    p.add_argument("--trust-admin", metavar="CERT", help="the fleet-admin certificate (evidence-officer ca "
                   "issue-admin): officer trust then arrives as signed bundles (evidence-officer trust publish) "
                   "into STATE/officers")
    p.add_argument("--user", default="evidence", help="service user that must own the state (default %(default)s)")
    p.add_argument("--no-enable", action="store_true", help="do not run systemctl enable")
    p.add_argument("--root", help="prefix for every path written (preparing an image, tests); implies no systemctl")
    p.set_defaults(func=cmd_provision)

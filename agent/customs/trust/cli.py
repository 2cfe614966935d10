"""``evidence-officer trust publish``: sign the fleet's officer trust and publish it retained to every device."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.core.errors import ConfigError
from agent.customs.ca.folder import CaFolder
from agent.customs.trust.admin import ADMIN_CERT, ADMIN_KEY, load_admin
from agent.customs.trust.bundle import build, load_permissions
from agent.wire.mqtt import MqttLink
from agent.wire.mqtt_settings import MqttConfig, TlsConfig
from agent.wire.trust_bundle import TRUST_TOPIC


def _cmd_publish(args: argparse.Namespace) -> int:
    admin = load_admin(Path(args.admin))
    ca = CaFolder(Path(args.ca_dir))
    default = [c for c in args.commands.split(",") if c]
    version, payload, grants = build(admin, ca, permissions=load_permissions(args.permissions), default=default,
                                     days=args.days)
    listed = ", ".join(f"{n}: {' '.join(c) or 'nothing'}" for n, c in sorted(grants.items())) or "none"
    print(f"trust version {version}: {len(grants)} officer(s) ({listed}), "
          f"valid {args.days:g} day(s); kept as {admin.folder / 'published' / f'v{version}.json'}")
    if args.broker is None:
        print("not sent (no --broker)")
        return 0
    tls = TlsConfig(ca_file=args.cafile or ca.cert_path, cert_file=admin.folder / ADMIN_CERT,
                    key_file=admin.folder / ADMIN_KEY)
    cfg = MqttConfig.model_validate({"broker": args.broker, "tls": tls if args.broker.startswith("mqtts") else None,
                                     "client_id": f"{admin.name}-trust", "session_expiry_s": 0})
    link = MqttLink(cfg, name="trust-publish")
    link.start()
    try:
        if not link.wait_connected(args.timeout):
            raise ConfigError(f"{args.broker}: could not connect as {admin.name}: {link.last_error}")
        res = link.publish_wait(TRUST_TOPIC, payload, timeout=args.timeout, qos=1, retain=True,
                                content_type="application/json")
    finally:
        link.close(offline=False)
    if not res.ok:
        print(f"the broker refused the bundle on {TRUST_TOPIC}: {res.reason} (0x{res.code:02x}); is {admin.name} "
              "an admin account in its ACL (broker-setup --admin)?", file=sys.stderr)
        return 1
    print(f"published retained on {TRUST_TOPIC}; devices report it as trust.version {version} in their status")
    return 0


def register(subparsers: Any) -> None:
    """``evidence-officer trust publish --admin DIR --ca-dir DIR [--broker URL]``."""
    trust = subparsers.add_parser("trust", help="officer trust pushed to devices: signed bundles (docs/fleet-admin.md)")
    sub = trust.add_subparsers(dest="trust_command", required=True)
    p = sub.add_parser("publish", help="sign the current officers, their permissions and the CRL; publish retained")
    p.add_argument("--admin", required=True, help="fleet-admin key folder (evidence-officer ca issue-admin)")
    p.add_argument("--ca-dir", required=True, help="the customs CA folder: officers from its issuance log, its crl.pem")
    p.add_argument("--permissions", type=Path, help="JSON officer id -> command names (narrower grants)")
    p.add_argument("--commands", default="*", help="commands of officers not in --permissions, comma-separated "
                   "(default '*': every command; '' grants nothing)")
    p.add_argument("--days", type=float, default=30.0, help="validity: devices refuse it afterwards (default 30)")
    p.add_argument("--broker", help="mqtts://host:port; without it the bundle is only written")
    p.add_argument("--cafile", type=Path, help="broker CA (default the CA folder's ca.pem)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to connect and publish")
    p.set_defaults(func=_cmd_publish)

"""`evidence-agent demo`: the agent on embedded defaults (synthetic camera, simulated GPS, a local vault),
optionally publishing to a broker, then the vault verified."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography import x509

from agent.core.errors import ConfigError
from agent.device.verify_command import default_checkers


def register(sub: Any) -> None:
    """Add ``demo`` to the ``evidence-agent`` subcommands."""
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

"""``evidence-officer console --config FILE``: run the officer console (uvicorn): on 127.0.0.1, or on another
address only with mutual TLS (the officer's certificate; see origin.py)."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from agent.core.errors import ConfigError
from agent.customs.cmd_cmd import OfficerClient
from agent.customs.console.config import ConsoleConfig, load_console_config
from agent.customs.console.deps import ConsoleServices
from agent.customs.console.fleet_state import FleetTracker
from agent.customs.console.tls import uvicorn_tls
from agent.customs.keys import load_officer
from agent.wire.mqtt import MqttLink
from agent.wire.mqtt_settings import MqttConfig, TlsConfig

log = logging.getLogger(__name__)


def build_services(cfg: ConsoleConfig) -> ConsoleServices:
    """Officer key, device CAs, the broker link (not started) and the fleet table."""
    officer = load_officer(cfg.officer.keys)
    cas = None
    if cfg.officer.device_ca is not None:
        try:
            cas = x509.load_pem_x509_certificates(cfg.officer.device_ca.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"officer.device_ca {cfg.officer.device_ca}: {exc}") from None
    b = cfg.broker
    tls = None if b.ca_file is None else TlsConfig(ca_file=b.ca_file, cert_file=b.cert_file, key_file=b.key_file)
    try:
        mqtt = MqttConfig.model_validate({"broker": b.url, "tls": tls, "session_expiry_s": 0,
                                          "client_id": b.client_id or f"{officer.officer_id}-console-"
                                                                      f"{secrets.token_hex(3)}"})
    except ValueError as exc:
        raise ConfigError(f"broker: {exc}") from None
    link = MqttLink(mqtt, name="console")
    fleet = FleetTracker(cas)
    fleet.subscribe_to(link)
    from agent.customs.inspection.model import InspectionStore

    return ConsoleServices(cfg=cfg, link=link, client=OfficerClient(link, officer, device_cas=cas), fleet=fleet,
                           device_cas=cas, inspections=InspectionStore(cfg.inspections.data),
                           evidence=cfg.inspections.evidence,
                           index=None if cfg.index.url is None else open_reader(cfg.index.url))


def open_reader(url: str) -> Any:
    """The ingest's index, read-only; ConfigError naming ``index.url`` when it cannot be used."""
    from agent.customs.console.index_reader import IndexReader
    from agent.customs.store.base import IndexError_
    from agent.customs.store.opening import open_index_reader
    from agent.customs.store.postgres import _redact

    try:
        return IndexReader(open_index_reader(url), _redact(url), opener=lambda: open_index_reader(url))
    except IndexError_ as exc:
        raise ConfigError(f"index.url: {exc}") from None


def check_config(cfg: ConsoleConfig, source: str) -> list[str]:
    """What ``--check-config`` checks beyond the file's own validation (done by ``load_console_config``): the
    officer's keys and the device CAs load, the TLS files of listen.* are usable. Lines to print; ConfigError
    naming the key for the first problem."""
    officer = load_officer(cfg.officer.keys)
    if cfg.officer.device_ca is not None:
        try:
            x509.load_pem_x509_certificates(cfg.officer.device_ca.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{source}: officer.device_ca {cfg.officer.device_ca}: {exc}") from None
    uvicorn_tls(cfg.listen)
    tsa = cfg.report.tsa
    return [f"officer {officer.officer_id} ({cfg.officer.keys}); broker {cfg.broker.url}",
            f"listen {cfg.listen.host}:{cfg.listen.port}" + (" with mutual TLS" if cfg.listen.mutual_tls else ""),
            f"inspections: data {cfg.inspections.data}, evidence {cfg.inspections.evidence or '(not set)'}",
            f"report: TSA {tsa} time-stamps the officer's PDF signature" if tsa else
            "report: no [report] tsa_url: the officer's PDF signature is dated by this machine's clock only"]


def _cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from agent.customs.console.app import create_app

    cfg = load_console_config(Path(args.config))
    if args.check_config:
        for line in check_config(cfg, args.config):
            print(line)
        print(f"{args.config}: OK")
        return 0
    if args.port is not None:
        cfg = cfg.model_copy(update={"listen": cfg.listen.model_copy(update={"port": args.port})})
    tls = uvicorn_tls(cfg.listen)  # the files behind listen.* are usable (load_console_config checked the keys)
    if cfg.officer.device_ca is None:
        print("warning: no officer.device_ca: device certificates are only checked to name the device",
              file=sys.stderr)
    services = build_services(cfg)
    services.link.start()
    if not services.link.wait_connected(10):
        print(f"warning: not connected to {cfg.broker.url} yet ({services.link.last_error or 'timeout'}); "
              "retrying in the background", file=sys.stderr)
    from agent.customs.inspection.web import router as inspections

    app = create_app(services, extra_routers=[inspections])
    host, port = cfg.listen.host, cfg.listen.port
    scheme = "https" if tls else "http"
    who = (f"mutual TLS: only {services.client.officer.officer_id}'s certificate from {cfg.listen.client_ca}"
           if cfg.listen.mutual_tls else "loopback clients only")
    print(f"console: {scheme}://{host}:{port}/ (officer {services.client.officer.officer_id}, broker "
          f"{cfg.broker.url}; {who})", flush=True)
    try:
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", ws_ping_interval=20,
                                      **tls)).run()
    finally:
        services.link.close(offline=False)
        if services.index is not None:
            services.index.close()
    return 0


def register(subparsers: Any) -> None:
    """``evidence-officer console --config FILE [--port N]``."""
    p = subparsers.add_parser("console", help="the officer console: fleet and verified live HD video in a browser")
    p.add_argument("--config", required=True, help="console TOML (broker, officer keys, CAs, listen address)")
    p.add_argument("--port", type=int, help="override listen.port")
    p.add_argument("--check-config", action="store_true",
                   help="validate the config (keys, CAs, TLS files, [report] tsa_url) and exit: 0 valid, 2 not")
    p.set_defaults(func=_cmd_console)

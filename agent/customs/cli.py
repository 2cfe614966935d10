"""``evidence-officer``: customs-side tools (ingest, live, cmd, keys).

Each area registers its own subcommand through ``register(subparsers)``; a subcommand sets
``func(args) -> int`` as its default.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.core.errors import AgentError, ConfigError, UplinkError, VerificationError
from agent.core.supervisor import EXIT_SUPERVISION
from agent.customs.broker.registry import load_registry
from agent.customs.flow import FlowLimits, Intake
from agent.customs.ingest import Ingest, Limits
from agent.customs.ingest_watch import STALL_EXIT_S, IngestWatch
from agent.customs.retained import END_MARKER, Sweep, sweep_retained
from agent.customs.state.base import GroupState, StateError
from agent.customs.state.postgres import PostgresState
from agent.customs.store.base import Index, IndexError_
from agent.customs.store.blobs import BlobError
from agent.customs.store.opening import open_blobs, open_index
from agent.signing.revocation import CrlFile
from agent.signing.trust import load_anchors
from agent.wire.mqtt import Inbound, MqttLink
from agent.wire.mqtt_settings import MqttConfig, TlsConfig
from agent.wire.topics import fleet_filter, shared

log = logging.getLogger(__name__)

SUBCOMMAND_MODULES = ("agent.customs.live_cmd", "agent.customs.cmd_cmd", "agent.customs.keys",
                      "agent.customs.console.cli", "agent.customs.inspection.cli",
                      "agent.customs.broker.setup", "agent.customs.ca.cli", "agent.customs.legal.cli",
                      "agent.customs.trust.cli")
INGEST_CHANNELS = ("record", "media", "alert", "receipt")
RETAINED_CHANNELS = ("status", "availability")  # retained messages never go to shared subscriptions


def ingest_config(args: argparse.Namespace) -> MqttConfig:
    tls = None
    if args.cafile is not None:
        tls = TlsConfig(ca_file=args.cafile, cert_file=args.cert, key_file=args.key)
    if not getattr(args, "client_id", None):
        args.client_id = f"ingest-{secrets.token_hex(4)}"
    return MqttConfig.model_validate({
        "broker": args.broker, "tls": tls, "client_id": args.client_id,
        "session_expiry_s": args.session_expiry, "handler_queue": 10000,
        # flow control pauses reading (PINGRESPs too) while the store catches up: allow long pauses
        "keepalive_s": 300})


def ingest_link(args: argparse.Namespace) -> MqttLink:
    return MqttLink(ingest_config(args), name="ingest")


def subscribe_ingest(link: MqttLink, ingest: Ingest, share: str | None, site: str = "+") -> None:
    """The fleet's filters; with flow control attached (``attach_intake``) the receiver takes every message
    and the per-subscription handler (the same batch path, one message at a time) is not used."""
    def one(msg: Inbound) -> None:
        ingest.handle(msg)

    for channel in INGEST_CHANNELS:
        link.subscribe(shared(fleet_filter(channel, site), share), one, qos=1)
    for channel in RETAINED_CHANNELS:
        link.subscribe(fleet_filter(channel, site), one, qos=1)


def _sweep_after_subscribing(link: MqttLink, args: argparse.Namespace, max_status_bytes: int) -> Sweep:
    """Look for retained junk the broker cannot refuse, only once the ingest's own subscriptions hold.

    The sweep's throw-away subscription matches live messages too: a device publishing before the ingest
    subscribed would get a successful PUBACK for a message only the sweep saw, and never resend it. A SUBACK
    for a later filter on the same link means the broker has taken the earlier SUBSCRIBEs.
    """
    try:
        if not link.wait_connected(15.0):
            log.warning("retained sweep skipped: not connected (%s)", link.last_error)
            return Sweep([])
        link.subscribe_wait(END_MARKER, lambda _m: None, qos=0, timeout=15.0)
    except UplinkError as exc:
        log.warning("retained sweep skipped: %s", exc)
        return Sweep([])
    log.info("%s: subscriptions in place, receiving evidence", args.client_id)  # operators and tests wait on it
    return sweep_retained(ingest_config(args), max_status_bytes)


def report_json(ingest: Ingest) -> dict[str, Any]:
    devices = sorted(ingest.report().items())
    return {"messages": ingest.messages, "slowest_message_ms": round(ingest.slowest_ms, 3),
            "slowest_topic": ingest.slowest_topic,
            "findings": [d for d, r in devices if r.findings],
            "devices": {d: asdict(r) for d, r in devices}}


def attach_intake(link: MqttLink, ingest: Ingest, limits: FlowLimits | None = None) -> Intake:
    """Flow control between the link and the store: bounded in flight, acknowledged once durable."""
    limits = limits or FlowLimits()
    intake = Intake(ingest.handle_batch, limits=limits, name=link.name)
    link.set_receiver(intake, limits.window)
    intake.start(link.ack)
    return intake


def group_state(index: Index | None) -> GroupState | None:
    """With a PostgreSQL index the group's bookkeeping lives there too (workers on any machine, in parallel
    per device); otherwise in ``OUT/.ingest/state.sqlite`` (workers on one machine, taking turns)."""
    from agent.customs.store.postgres import PostgresIndex

    return PostgresState(index) if isinstance(index, PostgresIndex) else None


def _crl_file(crl: Path | None, trust_ca: list[Path] | None) -> CrlFile | None:
    """``--crl FILE``: checked against ``--trust-ca`` now, re-read whenever the file changes."""
    if crl is None:
        return None
    if not trust_ca:
        raise ConfigError(f"--crl {crl}: needs --trust-ca (the CA whose CRL it is)")
    try:
        return CrlFile(crl, load_anchors(trust_ca))
    except VerificationError as exc:
        raise ConfigError(f"--crl {exc}") from None


def _cmd_ingest(args: argparse.Namespace) -> int:
    try:
        limits = Limits.parse(args.limit or [])
    except ValueError as exc:
        raise ConfigError(f"--limit: {exc}") from None
    try:
        index = None if args.index is None else open_index(args.index)
    except IndexError_ as exc:
        raise ConfigError(f"--index: {exc}") from None
    try:
        blobs = None if args.blobs is None else open_blobs(args.blobs)
    except BlobError as exc:
        raise ConfigError(f"--blobs: {exc}") from None
    revocations = _crl_file(args.crl, args.trust_ca)
    registry = None if args.registry is None else load_registry(args.registry)
    try:
        ingest = Ingest(args.out, trusted_ca=args.trust_ca or (), limits=limits, index=index, blobs=blobs,
                        state=group_state(index), revocations=revocations, registry=registry)
    except VerificationError as exc:
        raise ConfigError(f"--trust-ca: {exc}") from None
    except StateError as exc:
        raise ConfigError(f"--out: {exc}") from None
    stop = threading.Event()
    watch = IngestWatch(stop, args.stall_exit)  # before the link and the intake: their workers report to it
    link = ingest_link(args)
    subscribe_ingest(link, ingest, args.share, args.site)
    intake = attach_intake(link, ingest, FlowLimits(window=args.window, batch=args.batch))
    watch.watch_intake(intake)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link.start()
    sweep = _sweep_after_subscribing(link, args, limits.max_status_bytes)
    ingest.note_retained(sweep.found)
    started = time.monotonic()
    last_count, last_change = -1, time.monotonic()
    try:
        while not stop.is_set():
            if args.seconds is not None and time.monotonic() - started >= args.seconds:
                break
            if ingest.messages != last_count:
                last_count, last_change = ingest.messages, time.monotonic()
            elif args.idle is not None and time.monotonic() - last_change >= args.idle and link.connected:
                break
            stop.wait(0.2)
            watch.check()
    except KeyboardInterrupt:
        pass
    finally:
        watch.close()  # deaths while stopping are logged only
        intake.close()
        link.close(offline=False)
    rep = report_json(ingest)
    rep["flow"] = asdict(intake.stats)
    rep["retained_sweep"] = {"done": sweep.done, "junk": len(sweep.found) + sweep.more}
    rep["health"] = watch.report()
    ingest.close()
    if index is not None:
        index.close()
    text = json.dumps(rep, indent=2, sort_keys=True)
    if args.report is not None:
        Path(args.report).write_text(text + "\n")
    print(text)
    if watch.failed is not None:
        print(f"evidence-officer ingest: stopped on a failure: {watch.failed}", file=sys.stderr)
        return EXIT_SUPERVISION
    return 1 if rep["findings"] else 0


def register(subparsers: Any) -> None:
    """``evidence-officer ingest --broker URL [--out DIR] [--share GROUP]``."""
    p = subparsers.add_parser("ingest", help="receive, verify and store a fleet's evidence")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--out", type=Path, default=Path("ingest-vault"), help="officer-side vault root")
    p.add_argument("--share", help="MQTT v5 shared subscription group: workers of a group split the load")
    p.add_argument("--site", default="+", help="only this site (default: all)")
    p.add_argument("--registry", type=Path, metavar="FILE", help="device registry (broker-setup's "
                   "registry.toml): a message under any other site than its device's is refused")
    p.add_argument("--cafile", type=Path, help="broker CA (mqtts)")
    p.add_argument("--cert", type=Path, help="ingest TLS client certificate (mqtts)")
    p.add_argument("--key", type=Path, help="ingest TLS client key (mqtts)")
    p.add_argument("--client-id", help="stable id: the broker keeps this session's queue while we are away")
    p.add_argument("--session-expiry", type=int, default=7 * 24 * 3600, help="seconds the broker keeps our queue")
    p.add_argument("--trust-ca", type=Path, action="append", help="device CA certificate(s) (repeatable); "
                   "without it each device's certificate is pinned on first use")
    p.add_argument("--crl", type=Path, help="the customs CA's CRL (evidence-officer ca crl), re-read when it "
                   "changes: records of a revoked device are refused from its revocation time on")
    p.add_argument("--limit", action="append", metavar="NAME=VALUE",
                   help="ingest limit (repeatable), e.g. max_item_bytes=2000000000; see agent/customs/guard.py")
    p.add_argument("--seconds", type=float, help="stop after this long")
    p.add_argument("--idle", type=float, help="stop after this many seconds without a message")
    p.add_argument("--report", type=Path, help="also write the JSON report here")
    p.add_argument("--index", help="also index every record for search: postgresql://user@host/db (shared by "
                   "the workers of a region) or a SQLite file path")
    p.add_argument("--blobs", help="also keep every media file in a content-addressed, write-once store: a "
                   "folder (a shared mount for many workers; hard links when on OUT's filesystem) or "
                   "s3://bucket/prefix (object-lock bucket; AWS_* environment); the index points at the blob")
    p.add_argument("--window", type=int, default=FlowLimits.window,
                   help="messages taken from the broker but not yet stored (reading pauses at this bound)")
    p.add_argument("--batch", type=int, default=FlowLimits.batch,
                   help="messages stored per transaction and round of fsyncs (acknowledged after it)")
    p.add_argument("--stall-exit", type=float, default=STALL_EXIT_S,
                   help="exit 70 (for systemd to restart) when storing has failed for this many seconds "
                        "while messages wait (0: never); nothing unstored is acknowledged")
    p.set_defaults(func=_cmd_ingest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evidence-officer", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # a tool still being written must not take the others down
            log.debug("subcommand module %s unavailable: %s", name, exc)
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except AgentError as exc:
        print(f"evidence-officer: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``evidence-officer cmd DEVICE snapshot|mark|status|selftest|inspection.*|view.zoom``: signed commands.

The officer signs each command with the key from ``evidence-officer keys init``; the device answers on
``officer/{officer}/reply/{device}/{client}`` (MQTT v5 response topic, correlation data = the command's
nonce; the broker ACL lets only that device write there), and its reply must be signed by the addressed
device (certificate CN) under the device CA from ``--device-ca`` or the officer's ``device-ca.pem``.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from agent.core.clock import Clock, SystemClock
from agent.core.errors import AgentError, CommandError, ConfigError, UplinkError, VerificationError
from agent.core.vocab import NOTICE_COMMAND, STILL_RESOLUTIONS, ZOOM_COMMAND
from agent.customs.keys import DEFAULT_DIR, OfficerKey, load_officer
from agent.signing.trust import load_anchors
from agent.wire.commands import canonical, sign_command
from agent.wire.mqtt import Inbound, MqttLink
from agent.wire.mqtt_settings import MqttConfig, TlsConfig
from agent.wire.replies import REPLY_TYP, verify_device_object
from agent.wire.topics import DeviceTopics, fleet_filter, officer_reply

log = logging.getLogger(__name__)
DEVICE_CA_FILE = "device-ca.pem"  # in the officer key directory: the fleet's device CA (officer config)


class CommandRefused(CommandError):
    """The device answered (verified) with an error reply; ``code`` is its reason."""

    def __init__(self, device: str, command: str, code: str, message: str) -> None:
        super().__init__(f"{device} refused {command}: {code}: {message}")
        self.code = code


@dataclass
class Pending:
    """A command waiting for its reply."""

    nonce: str  # also the correlation data
    check_nonce: bool = True  # the reply must name exactly this nonce (False only for raw diagnostic payloads)
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None
    leaf: x509.Certificate | None = None  # the device certificate that signed the reply
    error: str | None = None


class OfficerClient:
    """Sends signed commands over an MqttLink and matches verified replies by correlation data."""

    def __init__(self, link: MqttLink, officer: OfficerKey, *, clock: Clock | None = None,
                 device_cas: list[x509.Certificate] | None = None, ttl_s: float = 60.0) -> None:
        self.link, self.officer, self.clock = link, officer, clock or SystemClock()
        self.device_cas, self.ttl_s = device_cas, ttl_s
        self.reply_token, self._reply_officer = secrets.token_hex(6), officer.officer_id
        self.reply_topic = officer_reply(officer.officer_id, f"+/{self.reply_token}")
        self._pending: dict[bytes, tuple[Pending, str]] = {}
        self._lock = threading.Lock()
        self._subscribed = False

    def _ensure_subscribed(self) -> None:
        if not self._subscribed:
            codes = self.link.subscribe_wait(self.reply_topic, self._on_reply, qos=1)
            if any(c >= 0x80 for c in codes):
                raise UplinkError(f"broker refused subscription to {self.reply_topic} (0x{codes[0]:02x})")
            self._subscribed = True

    def _on_reply(self, msg: Inbound) -> None:
        with self._lock:
            entry = self._pending.pop(msg.correlation_data or b"", None)
        if entry is None:
            log.warning("reply with unknown correlation data on %s ignored", msg.topic)
            return
        pending, device = entry
        try:
            if msg.topic != self.reply_topic_for(device):
                raise VerificationError(f"reply arrived on {msg.topic}, not the reply slot of {device}")
            wire = json.loads(msg.payload)
            body, leaf = verify_device_object(wire, typ=REPLY_TYP, device=device, trusted_cas=self.device_cas)
            if pending.check_nonce and body.get("nonce") != pending.nonce:
                raise VerificationError(_nonce_mismatch(body))
            pending.reply, pending.leaf = body, leaf
        except (ValueError, VerificationError) as exc:
            pending.error = f"reply failed verification: {exc}"
        pending.done.set()

    def reply_topic_for(self, device: str) -> str:
        """The response topic for a command to ``device``: only that device may publish there (ACL)."""
        return officer_reply(self._reply_officer, f"{device}/{self.reply_token}")

    def send(self, site: str, device: str, command: str, args: dict[str, Any] | None = None, *,
             nonce: str | None = None) -> Pending:
        """Sign and publish; returns at once (the reply lands in the Pending)."""
        wire = sign_command(self.officer.private_key, officer=self.officer.officer_id, device=device,
                            command=command, args=args, now_ms=self.clock.wall_ns() // 1_000_000,
                            ttl_s=self.ttl_s, nonce=nonce)
        return self.send_raw(site, device, canonical(wire), wire["body"]["nonce"])

    def send_raw(self, site: str, device: str, payload: bytes, correlation: str | None = None) -> Pending:
        """Publish exactly ``payload`` on the device's command topic (diagnostics, tests of refusals)."""
        self._ensure_subscribed()
        pending = Pending(correlation or secrets.token_hex(16), check_nonce=correlation is not None)
        corr = pending.nonce.encode()
        with self._lock:
            self._pending[corr] = (pending, device)
        self.link.publish(DeviceTopics(site, device).cmd, payload, qos=1, response_topic=self.reply_topic_for(device),
                          correlation=corr, content_type="application/json")
        return pending

    def request(self, site: str, device: str, command: str, args: dict[str, Any] | None = None, *,
                nonce: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """Send and wait for the verified reply body; CommandError if the device refused it."""
        reply, _leaf = self.request_signed(site, device, command, args, nonce=nonce, timeout=timeout)
        return reply

    def request_signed(self, site: str, device: str, command: str, args: dict[str, Any] | None = None, *,
                       nonce: str | None = None, timeout: float = 10.0) -> tuple[dict[str, Any], x509.Certificate]:
        """Like ``request``, also returning the device certificate that signed the reply."""
        return self.wait(self.send(site, device, command, args, nonce=nonce), device, command, timeout)

    def wait(self, pending: Pending, device: str, command: str,
             timeout: float = 10.0) -> tuple[dict[str, Any], x509.Certificate]:
        """The verified reply of ``pending``; CommandRefused for a (verified) error reply."""
        if not pending.done.wait(timeout):
            with self._lock:
                self._pending.pop(pending.nonce.encode(), None)
            raise UplinkError(f"no reply from {device} to {command} within {timeout} s")
        if pending.error:
            raise VerificationError(pending.error)
        assert pending.reply is not None and pending.leaf is not None
        if not pending.reply.get("ok"):
            err = pending.reply.get("error") or {}
            raise CommandRefused(device, command, str(err.get("code")), str(err.get("message")))
        return pending.reply, pending.leaf


def _nonce_mismatch(body: dict[str, Any]) -> str:
    """Why a device-signed reply is not the answer to this command (it names no nonce, or another one)."""
    err = body.get("error") if isinstance(body.get("error"), dict) else None
    said = f" (the device answered an unverifiable command: {str(err.get('code'))[:40]})" if err else ""
    if body.get("nonce") is None:
        return f"reply names no nonce, so it is not the answer to this command{said}"
    return f"reply names another command's nonce, not this one{said}"


def discover_site(link: MqttLink, device: str, timeout: float = 5.0) -> str:
    """The device's site, read from its retained availability topic (``evidence/+/DEVICE/availability``)."""
    found: list[str] = []
    got = threading.Event()

    def on(msg: Inbound) -> None:
        found.append(msg.topic.split("/")[1])
        got.set()

    link.subscribe(fleet_filter("availability", device=device), on, qos=1)
    if not got.wait(timeout):
        raise UplinkError(f"device {device} has no retained availability message; pass --site")
    return found[0]


# --------------------------------------------------------------------------- CLI plumbing


def add_connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", help="device id")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--site", help="site id (default: read from the device's retained availability)")
    p.add_argument("--keys", type=Path, default=DEFAULT_DIR, help="officer key directory (default %(default)s)")
    p.add_argument("--cafile", type=Path, help="broker CA (mqtts)")
    p.add_argument("--cert", type=Path, help="officer TLS client certificate (mqtts)")
    p.add_argument("--key", type=Path, help="officer TLS client key (mqtts)")
    p.add_argument("--device-ca", type=Path, help="CA certificate(s) the device's certificate must chain to "
                   f"(default: {DEVICE_CA_FILE} in the --keys directory)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def device_cas(args: argparse.Namespace) -> list[x509.Certificate] | None:
    """The device CA from ``--device-ca``, else from ``<keys>/device-ca.pem``; None (with a warning) if neither."""
    path = args.device_ca if args.device_ca is not None else Path(args.keys) / DEVICE_CA_FILE
    if args.device_ca is None and not path.exists():
        print(f"warning: no --device-ca and no {path}: a reply is only checked to be signed by a certificate "
              "naming the device (trust on first use)", file=sys.stderr)
        return None
    try:
        return load_anchors([path])
    except VerificationError as exc:
        raise ConfigError(f"device CA: {exc}") from None


def connect(args: argparse.Namespace) -> tuple[MqttLink, OfficerClient, str]:
    """Officer link + client from CLI arguments; returns (link, client, site)."""
    officer = load_officer(args.keys)
    tls = None
    if args.cafile is not None:
        tls = TlsConfig(ca_file=args.cafile, cert_file=args.cert, key_file=args.key)
    try:
        cfg = MqttConfig.model_validate({"broker": args.broker, "tls": tls, "session_expiry_s": 0,
                                         "client_id": f"{officer.officer_id}-{secrets.token_hex(4)}"})
    except ValueError as exc:
        raise ConfigError(f"broker settings: {exc}") from None
    cas = device_cas(args)
    link = MqttLink(cfg, name="officer")
    link.start()
    if not link.wait_connected(args.timeout):
        link.close(offline=False)
        raise UplinkError(f"could not connect to {args.broker}: {link.last_error or 'timeout'}")
    client = OfficerClient(link, officer, device_cas=cas)
    try:
        site = args.site or discover_site(link, args.device, args.timeout)
    except AgentError:
        link.close(offline=False)
        raise
    return link, client, site


COMMANDS = ("snapshot", "mark", "status", "selftest", "inspection.start", "inspection.end",
            "inspection.decision", "inspection.report", NOTICE_COMMAND, ZOOM_COMMAND)


def command_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command's arguments from ``--args JSON`` plus ``--note``/``--label``; ConfigError if malformed."""
    cmd_args: dict[str, Any] = {}
    if args.args:
        try:
            cmd_args = json.loads(args.args)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--args: not JSON: {exc}") from None
        if not isinstance(cmd_args, dict):
            raise ConfigError("--args: must be a JSON object")
    if args.cmd_name == "mark" and not (args.note or cmd_args.get("note")):
        raise ConfigError("mark needs --note TEXT")
    if args.note:
        cmd_args["note"] = args.note
    if args.label:
        cmd_args["label"] = args.label
    if getattr(args, "resolution", None) == "full":
        cmd_args["resolution"] = "full"
    return cmd_args


def _cmd(args: argparse.Namespace) -> int:
    try:
        cmd_args = command_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    link, client, site = connect(args)
    try:
        reply = client.request(site, args.device, args.cmd_name, cmd_args, timeout=args.timeout)
    except (CommandError, UplinkError, VerificationError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}) if args.json else f"error: {exc}",
              file=sys.stdout if args.json else sys.stderr)
        return 1
    finally:
        link.close(offline=False)
    if args.json:
        print(json.dumps(reply, sort_keys=True))
    else:
        print(f"{args.device}: {args.cmd_name} ok (verified device signature)")
        for key, value in sorted((reply.get("result") or {}).items()):
            print(f"  {key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    return 0


def register(subparsers: Any) -> None:
    """``evidence-officer cmd DEVICE snapshot|mark|status|selftest --broker URL [--note TEXT]``."""
    p = subparsers.add_parser("cmd", help="send a signed command to a device and verify its reply")
    add_connection_args(p)
    p.add_argument("cmd_name", metavar="COMMAND", choices=COMMANDS,
                   help="snapshot: seal a still now (--label, --note); mark: seal an officer's note (--note); "
                        "status: the device's state; selftest: run the self-test and seal its result; "
                        "inspection.start/end/decision/report: inspection steps (--args JSON); "
                        "view.zoom: zoom/pan while a live view runs (--args '{\"cx\": 0.5, \"cy\": 0.5, "
                        "\"factor\": 3}', fractions of the full view, factor 1-8; or '{\"reset\": true}')")
    p.add_argument("--note", help="mark/snapshot: the note sealed into the device's evidence chain")
    p.add_argument("--label", help="snapshot: what the still shows (identity_document, power_of_attorney, "
                                   "credentials, location, inspection, other)")
    p.add_argument("--resolution", choices=STILL_RESOLUTIONS, default="stream",
                   help="snapshot: stream (the video's size, default) or full (the camera's full sensor, or a file's "
                        "native size: a readable document; one at a time)")
    p.add_argument("--args", help='further arguments as a JSON object, e.g. \'{"case": "C-1", "enterprise": "X"}\'')
    p.set_defaults(func=_cmd)

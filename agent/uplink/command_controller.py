"""Device-side command controller: verify, validate arguments, dispatch to injected callables, reply.

Replies are signed by the device (``typ`` ``evidence-reply/1``) and carry the certificate chain, so the
officer knows the answer — and a live session's parameters — came from the device and not the broker.
Every failure becomes an error reply on the MQTT v5 response topic (with the request's correlation data)
and a log line; nothing an officer sends can crash the controller.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.clock import Clock
from agent.core.errors import AgentError, CommandError
from agent.core.model import Moment, SealedItem
from agent.core.vocab import CASE_PATTERN, ID_PATTERN, NOTICE_COMMAND, SHA256_PATTERN, SnapshotLabel, StillResolution
from agent.wire.commands import CommandRejected, CommandRequest, CommandVerifier
from agent.wire.replies import REPLY_TYP, DeviceSigner, sign_object
from agent.wire.zoom import ZoomArgs

log = logging.getLogger(__name__)

_REPLY_TOPIC = re.compile(rf"^officer/{ID_PATTERN[1:-1]}/reply(/[A-Za-z0-9._-]{{1,64}}){{0,4}}\Z")


# --------------------------------------------------------------------------- argument models


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoArgs(_Args):
    pass


class MarkArgs(_Args):
    note: str = Field(min_length=1, max_length=2000)


class LiveStartArgs(_Args):
    width: int | None = Field(default=None, ge=16, le=8192)
    height: int | None = Field(default=None, ge=16, le=8192)
    fps: int | float | None = Field(default=None, gt=0, le=240)
    quality: int | None = Field(default=None, ge=1, le=100)
    seconds: int | float | None = Field(default=None, gt=0, le=86_400)
    codec: Literal["jpeg", "h264"] = "jpeg"  # h264: signed fMP4 fragments for a browser player
    bitrate_kbps: int | None = Field(default=None, ge=50, le=20_000)


class LiveSessionArgs(_Args):
    session: str = Field(pattern=ID_PATTERN)


class VoiceStartArgs(_Args):
    """A two-way voice session (agent/uplink/voice.py); the device bounds ``seconds`` by its config."""

    seconds: int | float | None = Field(default=None, gt=0, le=86_400)


class SnapshotArgs(_Args):
    """An officer's still; a label says what it shows (a check-in document, the site, ...)."""

    label: SnapshotLabel | None = None
    note: str | None = Field(default=None, min_length=1, max_length=2000)
    # "full": the full sensor (picamera2) or the source's native size, one still at a time
    resolution: StillResolution = "stream"


class InspectionStartArgs(_Args):
    case: str = Field(pattern=CASE_PATTERN)
    enterprise: str = Field(min_length=1, max_length=200)
    officers: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        default_factory=list, max_length=16)
    planned_minutes: int = Field(default=25, ge=1, le=24 * 60)
    registered_site: str | None = Field(default=None, max_length=200)


class InspectionEndArgs(_Args):
    case: str = Field(pattern=CASE_PATTERN)
    outcome: Literal["completed", "shift_to_onsite", "aborted"] = "completed"
    note: str | None = Field(default=None, min_length=1, max_length=2000)


class DecisionArgs(_Args):
    case: str = Field(pattern=CASE_PATTERN)
    decision: Literal["continue", "shift_to_onsite"]
    reason: str = Field(min_length=1, max_length=2000)


class ReportArgs(_Args):
    """The hash of the officer-signed report manifest, sealed so the device's chain vouches for it too."""

    case: str = Field(pattern=CASE_PATTERN)
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=1, le=1 << 40)
    items: int = Field(ge=0, le=10_000_000)


class NoticeArgs(_Args):
    """Advance notice of a scheduled inspection. ``scheduled`` is ISO 8601 with a UTC offset; the handler
    (agent.uplink.notices) checks it against the device clock and ``site`` against the device's site."""

    case: str = Field(pattern=CASE_PATTERN)
    site: str = Field(pattern=ID_PATTERN)
    enterprise: str = Field(min_length=1, max_length=200)
    scheduled: str = Field(min_length=16, max_length=40)
    planned_minutes: int = Field(default=25, ge=1, le=24 * 60)
    registered_site: str | None = Field(default=None, min_length=1, max_length=200)
    officers: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(default_factory=list, max_length=16)
    note: str | None = Field(default=None, min_length=1, max_length=2000)


ARG_MODELS: Final[dict[str, type[BaseModel]]] = {
    "snapshot": SnapshotArgs, "status": NoArgs, "selftest": NoArgs, "mark": MarkArgs,
    "live.start": LiveStartArgs, "live.stop": LiveSessionArgs, "live.keepalive": LiveSessionArgs,
    "inspection.start": InspectionStartArgs, "inspection.end": InspectionEndArgs,
    "inspection.decision": DecisionArgs, "inspection.report": ReportArgs, NOTICE_COMMAND: NoticeArgs,
    # two-way voice
    "voice.start": VoiceStartArgs, "voice.stop": LiveSessionArgs, "voice.keepalive": LiveSessionArgs,
    "view.zoom": ZoomArgs,  # digital zoom (agent/device/zoom_part.py)
}

Handler = Callable[[CommandRequest, Any], Mapping[str, Any]]
ReplyPublisher = Callable[[str, bytes, "bytes | None"], None]


# --------------------------------------------------------------------------- controller


@dataclass
class CommandController:
    """Verifies each message, dispatches it to ``handlers[command]`` and publishes a signed reply."""

    device_id: str
    verifier: CommandVerifier
    signer: DeviceSigner
    clock: Clock
    publish: ReplyPublisher
    handlers: dict[str, Handler] = field(default_factory=dict)

    def on_message(self, msg: Any) -> None:
        """Handler for ``MqttLink.subscribe(topics.cmd, ...)`` (an ``Inbound``: payload, response topic,
        correlation data); a raw paho ``MQTTMessage`` works too. A command delivered as retained (left on the
        topic, replayed by the broker on every subscribe) is dropped unread: commands are for the moment sent."""
        if getattr(msg, "retain", False):
            log.warning("command delivered as retained on %.200s: ignored (an officer must send it live)",
                        getattr(msg, "topic", "?"))
            return
        if hasattr(msg, "response_topic"):
            self.handle(bytes(msg.payload), msg.response_topic, msg.correlation_data)
            return
        props = getattr(msg, "properties", None)
        self.handle(bytes(msg.payload), getattr(props, "ResponseTopic", None),
                    getattr(props, "CorrelationData", None))

    def handle(self, payload: bytes, response_topic: str | None = None,
               correlation: bytes | None = None) -> dict[str, Any]:
        """Process one command; never raises. Returns the reply body (also published when possible)."""
        request: CommandRequest | None = None
        try:
            request = self.verifier.verify(payload)
            result = self._dispatch(request)
            body = self._reply(request, True, result=dict(result))
            log.info("command %s from %s accepted (nonce %s)", request.command, request.officer,
                     request.nonce[:12])
        except CommandRejected as exc:
            body = self._reply(request, False, error=exc)
            log.warning("command rejected: %s [officer=%s topic=%s]", exc,
                        request.officer if request else body.get("officer") or "unverified", response_topic)
        except Exception as exc:  # a command must never take the device down
            log.exception("command handler crashed")
            body = self._reply(request, False, error=CommandRejected("failed", type(exc).__name__))
        self._send(body, response_topic, correlation)
        return body

    def _dispatch(self, request: CommandRequest) -> Mapping[str, Any]:
        handler = self.handlers.get(request.command)
        if handler is None:
            raise CommandRejected("unknown_command", f"{request.command!r} is not supported by this device")
        try:
            args = ARG_MODELS[request.command].model_validate(dict(request.args))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "args"
            raise CommandRejected("bad_args", f"{where}: {first.get('msg')}") from None
        try:
            return handler(request, args)
        except CommandRejected:
            raise
        except CommandError as exc:
            raise CommandRejected("bad_args", str(exc)) from None
        except AgentError as exc:
            raise CommandRejected("failed", str(exc)) from None

    def _reply(self, request: CommandRequest | None, ok: bool, *, result: dict[str, Any] | None = None,
               error: CommandRejected | None = None) -> dict[str, Any]:
        """The reply body. Command, nonce and officer are named only when the officer's signature verified:
        a forged command cannot make the device sign a nonce (or command) it claims, so an error for it can
        never pass for the answer to someone else's command."""
        known = request if request is not None else (error.verified if error is not None else None)
        return {
            "typ": REPLY_TYP, "device": self.device_id, "ok": ok,
            "command": known.command if known else None,
            "nonce": known.nonce if known else None,
            "officer": known.officer if known else None,
            "time_ms": self.clock.wall_ns() // 1_000_000,
            "result": result,
            "error": None if error is None else {"code": error.code, "message": error.detail[:300]},
        }

    def _send(self, body: dict[str, Any], topic: str | None, correlation: bytes | None) -> None:
        if not topic:
            log.info("no response topic: reply not sent (%s)", "ok" if body["ok"] else body["error"]["code"])
            return
        if not _REPLY_TOPIC.match(topic):
            log.warning("refusing to reply on %r: not an officer reply topic", topic[:120])
            return
        if body["officer"] is not None and topic.split("/")[1] != body["officer"]:
            log.warning("refusing to reply on %r: the command was signed by %s", topic[:120], body["officer"])
            return
        try:
            self.publish(topic, sign_object(self.signer, body), correlation)
        except Exception:  # publishing a reply must not crash the command path
            log.exception("could not publish reply on %s", topic)


# --------------------------------------------------------------------------- stock handlers


def mark_handler(seal: Callable[..., SealedItem], moment: Callable[[], Moment]) -> Handler:
    """``mark``: seal the officer's note, with the officer's signed command itself, as kind "mark"."""

    def handle(request: CommandRequest, args: MarkArgs) -> Mapping[str, Any]:
        item = seal("mark", moment(), extra={
            "note": args.note, "officer": request.officer, "officer_key_id": request.key_id,
            "command": dict(request.wire),
        })
        return {"seq": item.seq, "record_hash": item.record_hash}

    return handle


def inspection_handlers(seal: Callable[..., SealedItem], moment: Callable[[], Moment],
                        open_inspection: Callable[[], dict[str, Any] | None]) -> dict[str, Handler]:
    """``inspection.start/end/decision/report``: each seals the officer's signed command with its record.

    Start is idempotent for the case already open (a console retrying after a reconnect gets the same
    answer); a second case cannot start while one is open, and end/decision must name the open case.
    """

    def officer(request: CommandRequest) -> dict[str, Any]:
        return {"officer": request.officer, "officer_key_id": request.key_id, "command": dict(request.wire)}

    def require_open(case: str) -> dict[str, Any]:
        current = open_inspection()
        if current is None:
            raise CommandRejected("conflict", "no inspection is open on this device")
        if current["case"] != case:
            raise CommandRejected("conflict", f"inspection {current['case']} is open, not {case}")
        return current

    def start(request: CommandRequest, args: InspectionStartArgs) -> Mapping[str, Any]:
        current = open_inspection()
        if current is not None:
            if current["case"] == args.case:
                return {"case": args.case, "seq": current["start_seq"], "already_open": True}
            raise CommandRejected("conflict", f"inspection {current['case']} is still open")
        item = seal("inspection_start", moment(), extra={**args.model_dump(), **officer(request)})
        return {"case": args.case, "seq": item.seq, "record_hash": item.record_hash,
                "gps": item.record["gps"], "time": item.record["time"]}

    def end(request: CommandRequest, args: InspectionEndArgs) -> Mapping[str, Any]:
        current = require_open(args.case)
        item = seal("inspection_end", moment(), extra={**args.model_dump(exclude_none=True), **officer(request),
                                                       "start_seq": current["start_seq"]})
        return {"case": args.case, "seq": item.seq, "record_hash": item.record_hash,
                "start_seq": current["start_seq"]}

    def decision(request: CommandRequest, args: DecisionArgs) -> Mapping[str, Any]:
        require_open(args.case)
        item = seal("decision", moment(), extra={**args.model_dump(), **officer(request)})
        return {"case": args.case, "seq": item.seq, "record_hash": item.record_hash}

    def report(request: CommandRequest, args: ReportArgs) -> Mapping[str, Any]:
        item = seal("report", moment(), extra={**args.model_dump(), **officer(request)})
        return {"case": args.case, "seq": item.seq, "record_hash": item.record_hash}

    return {"inspection.start": start, "inspection.end": end, "inspection.decision": decision,
            "inspection.report": report}


def simple_handler(fn: Callable[[], Mapping[str, Any]]) -> Handler:
    """Wrap a no-argument callable (status, selftest, snapshot) as a handler."""

    def handle(request: CommandRequest, args: Any) -> Mapping[str, Any]:
        return fn()

    return handle

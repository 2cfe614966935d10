"""MQTT v5 message values and helpers shared by device, officer and ingest code (no connection state)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

NO_MATCHING_SUBSCRIBERS = 0x10
PACKET_TOO_LARGE = 0x95
UserProps = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Inbound:
    """A received message, detached from paho."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_props: tuple[tuple[str, str], ...] = ()
    response_topic: str | None = None
    correlation_data: bytes | None = None
    content_type: str | None = None

    def prop(self, name: str) -> str | None:
        for key, value in self.user_props:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class PublishResult:
    """Outcome of one QoS>0 publish: the PUBACK reason code (0 = success)."""

    mid: int
    code: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.code < 0x80


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


Handler = Callable[[Inbound], None]
Done = Callable[[PublishResult], None]
ConnectListener = Callable[[bool], None]  # session_present


_PATCHED = threading.Lock()


def accept_puback_packet_too_large() -> None:
    """Let paho decode a PUBACK carrying 0x95 (Packet too large).

    Mosquitto 2.0 answers a publish over ``message_size_limit`` with PUBACK 0x95, a code MQTT v5
    lists for CONNACK/DISCONNECT only. paho 2.2 then reports a malformed packet, drops the
    connection and resends the same message on reconnect, forever (measured here). Accepting the
    code turns that loop into a refusal the outbox can act on. Idempotent.
    """
    with _PATCHED:
        names = ReasonCode.names[PACKET_TOO_LARGE]["Packet too large"]
        if PacketTypes.PUBACK not in names:
            names.append(PacketTypes.PUBACK)


def make_properties(packet: int, *, user_props: UserProps = (), response_topic: str | None = None,
                    correlation: bytes | None = None, content_type: str | None = None, utf8: bool = False,
                    expiry_s: int | None = None) -> Properties | None:
    props = Properties(packet)  # type: ignore[no-untyped-call]
    used = False
    if user_props:
        props.UserProperty = [(str(k), str(v)) for k, v in user_props]
        used = True
    if response_topic is not None:
        props.ResponseTopic = response_topic
        used = True
    if correlation is not None:
        props.CorrelationData = correlation
        used = True
    if content_type is not None:
        props.ContentType = content_type
        used = True
    if utf8:
        props.PayloadFormatIndicator = 1
        used = True
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
        used = True
    return props if used else None


def packet_size(topic: str, payload_len: int, props: Properties | None) -> int:
    """Size of the PUBLISH packet on the wire (fixed header + topic + packet id + properties + payload)."""
    props_len = 1 if props is None else len(props.pack())  # type: ignore[no-untyped-call]
    remaining = 2 + len(topic.encode()) + 2 + props_len + payload_len
    header = 2 if remaining < 128 else 3 if remaining < 16384 else 4 if remaining < 2097152 else 5
    return header + remaining


def size_bound(topic: str, payload_len: int, user_props: UserProps, response_topic: str | None,
                correlation: bytes | None, content_type: str | None) -> int:
    """An upper bound of packet_size() without building the properties (UTF-8: <= 4 bytes/char)."""
    props = sum(4 * (len(k) + len(v)) + 5 for k, v in user_props)
    props += 4 * len(response_topic or "") + len(correlation or b"") + 4 * len(content_type or "") + 32
    return 5 + 2 + 4 * len(topic) + 2 + 4 + props + payload_len

"""The receive side of :class:`agent.wire.mqtt.MqttLink`: subscriptions, dispatch and acknowledgement.

Subscriptions are kept in a registry and re-made on every connect (one dropped while offline is
unsubscribed on the next connect: the persistent session still holds it); SUBACK reason codes are
checked. Inbound messages are handed to a named worker thread (never handled inside a paho callback) and
acknowledged only after their handlers returned, so a crash mid-handling means redelivery, not loss. With a
receiver (``set_receiver``) every message goes to it instead and it acknowledges via ``ack``; while it has
no room the link does not read its socket, so TCP holds the broker back and nothing is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.core.errors import UplinkError
from agent.wire.messages import Handler, Inbound

log = logging.getLogger("agent.wire.mqtt")  # the link's one logger, as before the module was split

PAUSE_POLL_S = 0.05  # how long one paused read waits for room before the loop writes acks and pings


class Receiver(Protocol):
    """Takes every inbound message (on the paho thread: must not block) and acknowledges it itself."""

    def offer(self, inbound: Inbound, token: int, qos: int) -> None:
        """``token`` identifies the delivery for MqttLink.ack (packet id and connection)."""

    def has_room(self, timeout: float) -> bool: ...


class PacedClient(paho.Client):
    """paho client whose socket reads pause while the receiver is full (TCP backpressure, no drops).

    Only reading waits, and at most PAUSE_POLL_S at a time: the same loop still writes our PUBACKs,
    sends PINGREQs and handles reconnects in between.
    """

    receiver: Receiver | None = None

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        receiver = self.receiver
        if receiver is not None and not receiver.has_room(PAUSE_POLL_S):
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super().loop_read(max_packets)


@dataclass
class _Sub:
    filter: str
    handler: Handler
    qos: int
    no_local: bool
    granted: threading.Event = field(default_factory=threading.Event)
    codes: list[int] = field(default_factory=list)


def _strip_share(filter_: str) -> str:
    if filter_.startswith("$share/"):
        return filter_.split("/", 2)[2]
    return filter_


class InboundSide:
    """MqttLink's subscriptions, handler worker and receiver; the link provides the connection state below."""

    name: str
    connects: int
    _lock: threading.Lock
    _stop: threading.Event
    _started: bool
    _connected: threading.Event
    _client: PacedClient

    def _init_inbound(self, handler_queue: int) -> None:
        self._subs: dict[str, _Sub] = {}
        self._dropped: set[str] = set()  # unsubscribed while offline: the broker's session still holds them
        self._sub_mids: dict[int, _Sub] = {}
        self._inbox: queue.Queue[tuple[Inbound, int, int] | None] = queue.Queue(handler_queue)
        self._receiver: Receiver | None = None
        self._receiver_window = 0

    def _remake_subscriptions(self) -> None:
        """After a CONNACK: send what was dropped while offline, then every subscription again."""
        with self._lock:
            subs = list(self._subs.values())
            dropped, self._dropped = [f for f in self._dropped if f not in self._subs], set()
        for filter_ in dropped:
            self._send_unsubscribe(filter_)
        for sub in subs:
            self._send_subscribe(sub)

    # -- paho callbacks (never block) -----------------------------------------------------------
    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode],
                      _p: Properties | None) -> None:
        with self._lock:
            sub = self._sub_mids.pop(mid, None)
        if sub is None:
            return
        sub.codes = [int(c.value) for c in codes]
        for c in codes:
            if c.is_failure:
                log.error("%s: subscription to %s refused: %s", self.name, sub.filter, c.getName())
        sub.granted.set()

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        inbound = Inbound(
            topic=msg.topic, payload=bytes(msg.payload), qos=msg.qos, retain=bool(msg.retain),
            user_props=tuple((str(k), str(v)) for k, v in getattr(props, "UserProperty", []) or []),
            response_topic=getattr(props, "ResponseTopic", None),
            correlation_data=getattr(props, "CorrelationData", None),
            content_type=getattr(props, "ContentType", None))
        receiver = self._receiver
        if receiver is not None:
            # The token carries the connection it came on: a packet id is only meaningful there.
            receiver.offer(inbound, (self.connects << 16) | msg.mid, msg.qos)
            return
        try:
            self._inbox.put_nowait((inbound, msg.mid, msg.qos))
        except queue.Full:
            # Not acknowledged: the broker redelivers it after reconnect; say so loudly.
            log.error("%s: handler queue full, message on %s left unacknowledged", self.name, msg.topic)

    # -- handler worker -------------------------------------------------------------------------
    def _work(self, _stopping: threading.Event) -> None:  # ends at the None sentinel: handlers drain first
        while True:
            entry = self._inbox.get()
            if entry is None:
                return
            inbound, mid, qos = entry
            with self._lock:
                subs = list(self._subs.values())
            handlers = [s.handler for s in subs if paho.topic_matches_sub(_strip_share(s.filter), inbound.topic)]
            if not handlers:
                log.warning("%s: no handler for message on %s", self.name, inbound.topic)
            handled = True
            for handler in handlers:
                try:
                    handler(inbound)
                except Exception:
                    handled = False
                    log.exception("%s: handler for %s failed; message left unacknowledged (the broker "
                                  "redelivers it after a reconnect)", self.name, inbound.topic)
            if qos > 0 and handled and not self._stop.is_set():
                self._client.ack(mid, qos)

    # -- API ------------------------------------------------------------------------------------
    def set_receiver(self, receiver: Receiver, window: int) -> None:
        """Route every inbound message to ``receiver`` (before start()); it acknowledges via ack().

        Subscription handlers are then not called: the receiver dispatches. ``window`` is sent as our
        Receive Maximum in CONNECT (a hint for brokers that honour it); the pause on reads holds anyway.
        """
        if self._started:
            raise UplinkError("set_receiver() must be called before start()")
        self._receiver = receiver
        self._receiver_window = window
        self._client.receiver = receiver

    def ack(self, token: int, qos: int) -> None:
        """Acknowledge a message the receiver has stored (any thread; the paho loop sends the PUBACK).

        ``token`` is what offer() was given. A message taken on an earlier connection is not acked on
        this one: the broker resends it after the reconnect (same session) and its packet id may by
        now name another message; the resent copy is stored as a duplicate and acknowledged then.
        """
        if qos > 0 and not self._stop.is_set() and token >> 16 == self.connects:
            self._client.ack(token & 0xFFFF, qos)

    def subscribe(self, filter_: str, handler: Handler, qos: int = 1, *, no_local: bool = False) -> _Sub:
        """Register a handler; the subscription is (re)made on every connect.

        Handlers run one at a time on this link's worker thread. A QoS 1 message is acknowledged
        after its handlers return; if one raises, it stays unacknowledged so the broker redelivers
        it (a handler that means "refuse" should record the refusal and return).
        """
        sub = _Sub(filter_, handler, qos, no_local)
        with self._lock:
            self._subs[filter_] = sub
        if self._connected.is_set():
            self._send_subscribe(sub)
        return sub

    def subscribe_wait(self, filter_: str, handler: Handler, qos: int = 1, timeout: float = 10.0) -> list[int]:
        """Subscribe and wait for the SUBACK; returns its reason codes (>= 0x80 = refused)."""
        sub = self.subscribe(filter_, handler, qos)
        if not sub.granted.wait(timeout):
            raise UplinkError(f"no SUBACK for {filter_} within {timeout} s")
        return sub.codes

    def unsubscribe(self, filter_: str, handler: Handler | None = None) -> bool:
        """Drop a subscription and its handler; the broker hears UNSUBSCRIBE now or on the next connect.

        With ``handler``, only if that handler still owns ``filter_`` (a later ``subscribe`` to the same
        filter replaced it). True when a subscription was dropped.
        """
        with self._lock:
            sub = self._subs.get(filter_)
            if sub is None or (handler is not None and sub.handler != handler):
                return False
            del self._subs[filter_]
            for mid in [m for m, s in self._sub_mids.items() if s is sub]:
                del self._sub_mids[mid]
            if not self._connected.is_set():  # the persistent session keeps it: drop it when we are back
                self._dropped.add(filter_)
                return True
        self._send_unsubscribe(filter_)
        return True

    @property
    def subscriptions(self) -> list[str]:
        """The filters this link holds (and re-makes on every connect)."""
        with self._lock:
            return list(self._subs)

    def _send_unsubscribe(self, filter_: str) -> None:
        with self._lock:
            rc, _mid = self._client.unsubscribe(filter_)
            if rc != paho.MQTT_ERR_SUCCESS:  # not connected after all: try again on the next connect
                self._dropped.add(filter_)

    def _send_subscribe(self, sub: _Sub) -> None:
        sub.granted.clear()
        with self._lock:
            rc, mid = self._client.subscribe(sub.filter, options=SubscribeOptions(qos=sub.qos, noLocal=sub.no_local))
            if rc == paho.MQTT_ERR_SUCCESS and mid is not None:
                self._sub_mids[mid] = sub

"""One MQTT v5 connection (paho-mqtt 2.x) that device, officer and ingest code share.

What paho leaves to us (DESIGN-NOTES §4): reason codes on CONNACK/PUBACK/SUBACK are checked, not
assumed; the broker's Maximum Packet Size and Receive Maximum from CONNACK bound what we send;
subscriptions are re-made on every connect. This module holds the connection and the publish side; the
receive side (subscriptions, the handler worker, acks after handling, the receiver's flow control) is
:mod:`agent.wire.mqtt_inbound`.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.core.errors import ConfigError, UplinkError
from agent.core.threads import Worker
from agent.wire.errors import connect_error_text, tls_file_problem
from agent.wire.messages import (
    NO_MATCHING_SUBSCRIBERS,
    PACKET_TOO_LARGE,
    Done,
    Handler,
    Inbound,
    PublishResult,
    UserProps,
    Will,
    accept_puback_packet_too_large,
    make_properties,
    packet_size,
    size_bound,
)
from agent.wire.mqtt_inbound import InboundSide, PacedClient, Receiver
from agent.wire.mqtt_settings import MQTT_MAX_PACKET, MqttConfig

__all__ = ["NO_MATCHING_SUBSCRIBERS", "PACKET_TOO_LARGE", "ConnectListener", "Done", "Handler", "Inbound",
           "MqttLink", "PublishResult", "Receiver", "UserProps", "Will", "make_properties", "packet_size"]

log = logging.getLogger(__name__)

ConnectListener = Callable[[bool], None]  # session_present


class MqttLink(InboundSide):
    """A supervised MQTT v5 client: connect/reconnect, publish with outcome, handler registry."""

    def __init__(self, cfg: MqttConfig, *, will: Will | None = None, name: str = "mqtt",
                 online_payload: bytes = b"online") -> None:
        accept_puback_packet_too_large()
        self.cfg = cfg
        self.name = name
        self._will = will
        self._online = online_payload
        self._lock = threading.Lock()
        self._pending: dict[int, Done] = {}
        self._early: dict[int, PublishResult] = {}
        self._listeners: list[ConnectListener] = []
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._started = False
        self.max_packet_size = MQTT_MAX_PACKET
        self.receive_maximum = 65535
        self.last_error: str | None = None
        self._socket_error: str | None = None  # what paho logged when the socket failed (the OpenSSL reason)
        self.connects = 0
        self._init_inbound(cfg.handler_queue)
        self._client = self._make_client()
        self._worker = Worker(f"{name}-handlers", self._work, stopping=self._stop)

    # -- set-up ---------------------------------------------------------------------------------
    def _make_client(self) -> PacedClient:
        c = PacedClient(CallbackAPIVersion.VERSION2, client_id=self.cfg.client_id,
                        protocol=paho.MQTTv5, manual_ack=True)
        url = self.cfg.url
        if url.tls:
            tls = self.cfg.tls
            assert tls is not None  # validated by MqttConfig
            try:
                c.tls_set(ca_certs=str(tls.ca_file),
                          certfile=None if tls.cert_file is None else str(tls.cert_file),
                          keyfile=None if tls.key_file is None else str(tls.key_file),
                          cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError, ValueError) as exc:  # a configuration mistake: one line, no traceback
                raise ConfigError(f"cannot load the TLS files (CA {tls.ca_file}, certificate {tls.cert_file}, "
                                  f"key {tls.key_file}): {tls_file_problem(tls) or exc}") from None
        if self._will is not None:
            c.will_set(self._will.topic, self._will.payload, qos=self._will.qos, retain=self._will.retain)
        c.reconnect_delay_set(max(1, int(self.cfg.reconnect_min_s)), max(1, int(self.cfg.reconnect_max_s)))
        c.max_inflight_messages_set(self.cfg.max_inflight)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_log = self._on_log
        return c

    def start(self) -> None:
        """Connect in the background; paho retries with backoff until close()."""
        if self._started:
            return
        self._started = True
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        if self._receiver_window:
            props.ReceiveMaximum = min(65535, self._receiver_window)  # honoured by some brokers; not relied on
        url = self.cfg.url
        self._worker.start()
        self._client.connect_async(url.host, url.port, keepalive=self.cfg.keepalive_s,
                                   clean_start=False, properties=props)
        self._client.loop_start()

    def add_connect_listener(self, listener: ConnectListener) -> None:
        """Called (on the paho thread: must not block) after every accepted CONNACK."""
        self._listeners.append(listener)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- paho callbacks (never block) -----------------------------------------------------------
    def _on_connect(self, client: paho.Client, _u: Any, flags: Any, rc: ReasonCode,
                    props: Properties | None) -> None:
        if rc.is_failure:
            self.last_error = f"connect refused: {rc.getName()} (0x{rc.value:02x})"
            log.error("%s: broker %s refused the connection: %s", self.name, self.cfg.broker, rc.getName())
            return
        self.max_packet_size = int(getattr(props, "MaximumPacketSize", MQTT_MAX_PACKET) or MQTT_MAX_PACKET)
        self.receive_maximum = int(getattr(props, "ReceiveMaximum", 65535) or 65535)
        self.connects += 1
        self.last_error = None
        log.info("%s: connected to %s (session present: %s, max packet %d, receive max %d)", self.name,
                 self.cfg.broker, flags.session_present, self.max_packet_size, self.receive_maximum)
        if self._will is not None:
            client.publish(self._will.topic, self._online, qos=1, retain=True)
        self._remake_subscriptions()
        self._connected.set()
        for listener in list(self._listeners):
            try:
                listener(bool(flags.session_present))
            except Exception:
                log.exception("%s: connect listener failed", self.name)

    def _on_log(self, _c: paho.Client, _u: Any, level: int, message: str) -> None:
        if level == paho.MQTT_LOG_ERR and "socket" in message:
            self._socket_error = message

    def _explain(self, err: BaseException | str) -> str:
        url = self.cfg.url
        return connect_error_text(err, host=url.host, port=url.port,
                                  ca_file=None if self.cfg.tls is None else self.cfg.tls.ca_file)

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        exc = sys.exc_info()[1]  # paho calls this inside its ``except OSError`` around the connect
        self.last_error = self._explain(exc) if exc is not None else f"cannot reach {self.cfg.broker} (TCP/TLS failed)"
        log.warning("%s: %s; retrying with backoff", self.name, self.last_error)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, rc: ReasonCode,
                       _p: Properties | None) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if not self._stop.is_set():
            socket_error, self._socket_error = self._socket_error, None
            if socket_error is not None and not was_connected:  # never got in: the handshake was refused
                self.last_error = self._explain(socket_error)
            else:
                self.last_error = f"disconnected: {rc.getName()} (0x{rc.value:02x})" + (
                    f": {self._explain(socket_error)}" if socket_error else "")
            log.warning("%s: disconnected from %s: %s; reconnecting with backoff", self.name,
                        self.cfg.broker, self.last_error)

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties | None) -> None:
        result = PublishResult(mid, int(rc.value), rc.getName())
        with self._lock:
            done = self._pending.pop(mid, None)
            if done is None:
                self._early[mid] = result
                return
        self._finish(done, result)

    def _finish(self, done: Done, result: PublishResult) -> None:
        if not result.ok:
            log.warning("%s: broker refused message %d: %s (0x%02x)", self.name, result.mid,
                        result.reason, result.code)
        try:
            done(result)
        except Exception:
            log.exception("%s: publish completion callback failed", self.name)

    # -- API ------------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user_props: UserProps = (), response_topic: str | None = None,
                correlation: bytes | None = None, content_type: str | None = None, utf8: bool = False,
                expiry_s: int | None = None, on_done: Done | None = None) -> int:
        """Send one message; ``on_done`` hears the PUBACK outcome (on the paho thread: must not block).

        Raises UplinkError when the packet exceeds the broker's Maximum Packet Size (the broker
        would drop the connection with 0x95): callers chunk instead.
        """
        props = make_properties(PacketTypes.PUBLISH, user_props=user_props, response_topic=response_topic,
                                correlation=correlation, content_type=content_type, utf8=utf8,
                                expiry_s=expiry_s)
        if size_bound(topic, len(payload), user_props, response_topic, correlation, content_type) \
                <= self.max_packet_size:
            size = 0  # cheap upper bound fits: skip packing the properties twice
        else:
            size = packet_size(topic, len(payload), props)
        if size > self.max_packet_size:
            raise UplinkError(f"message on {topic} is {size} bytes, over the broker's maximum packet size "
                              f"of {self.max_packet_size} (PACKET_TOO_LARGE, 0x95)")
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise UplinkError(f"publish on {topic} failed: {paho.error_string(info.rc)}")
        if qos == 0:
            if on_done is not None:
                on_done(PublishResult(info.mid, 0, "Success"))
            return info.mid
        if on_done is not None:
            with self._lock:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._pending[info.mid] = on_done
            if early is not None:
                self._finish(on_done, early)
        else:
            with self._lock:
                self._early.pop(info.mid, None)
        return info.mid

    def publish_wait(self, topic: str, payload: bytes, timeout: float = 10.0, **kw: Any) -> PublishResult:
        """Publish and block until the broker answers (not for use on the paho thread)."""
        done = threading.Event()
        box: list[PublishResult] = []

        def finish(r: PublishResult) -> None:
            box.append(r)
            done.set()

        self.publish(topic, payload, on_done=finish, **kw)
        if not done.wait(timeout):
            raise UplinkError(f"no PUBACK for message on {topic} within {timeout} s")
        return box[0]

    def reply(self, request: Inbound, payload: bytes, *, user_props: UserProps = (),
              content_type: str = "application/json", on_done: Done | None = None) -> int | None:
        """Answer on the request's MQTT v5 response topic with its correlation data (None: no topic)."""
        if not request.response_topic:
            log.warning("%s: request on %s has no response topic; reply not sent", self.name, request.topic)
            return None
        return self.publish(request.response_topic, payload, qos=1, user_props=user_props,
                            correlation=request.correlation_data, content_type=content_type, on_done=on_done)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self, *, offline: bool = True) -> None:
        """Say 'offline' (retained) when we own an availability topic, disconnect, join threads."""
        if self._closed:
            return
        self._closed = True
        if self._started and offline and self._will is not None and self.connected:
            try:
                self.publish_wait(self._will.topic, self._will.payload, timeout=2.0, retain=True)
            except UplinkError as exc:
                log.warning("%s: could not publish offline state: %s", self.name, exc)
        self._stop.set()
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._inbox.put(None)
            self._worker.stop(10)
        self._connected.clear()

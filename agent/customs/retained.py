"""Retained messages a device left where none belong, found by one sweep of the broker's retained store.

Mosquitto 2.0 has no rule for the retain flag: the ACL confines each device to its channel topics and live
frames under its registered site (docs/broker.md), so this sweep, run when the ingest starts, is what notices a
retained message anywhere else than a device's ``availability``/``status`` (or a status over the ingest's
``max_status_bytes``). The ingest account writes nothing, so it reports them and does not clear them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from agent.wire.mqtt import Inbound, MqttLink
from agent.wire.mqtt_settings import MqttConfig
from agent.wire.topics import ROOT

log = logging.getLogger(__name__)

LEGITIMATE = frozenset({"availability", "status"})
MAX_FOUND = 10_000  # entries kept by one sweep (a report line each); the rest are counted
END_MARKER = f"{ROOT}/+/+/retained-sweep-end"  # matches nothing a device may write


@dataclass(frozen=True)
class RetainedJunk:
    device: str  # "?" when the topic is not a device topic
    topic: str
    size: int


@dataclass
class Sweep:
    found: list[RetainedJunk]
    more: int = 0  # junk beyond MAX_FOUND
    done: bool = False  # False: the broker could not be asked (logged); nothing is known


def sweep_retained(cfg: MqttConfig, max_status_bytes: int, timeout: float = 10.0) -> Sweep:
    """Subscribe to the fleet once (QoS 0, a throw-away session), keep the retained messages that do not
    belong, and stop after the SUBACK of a second filter: Mosquitto sends a subscription's retained
    messages before it handles the next SUBSCRIBE, and closing the link drains its handler first."""
    result = Sweep([])
    lock = threading.Lock()

    def on(msg: Inbound) -> None:
        if not msg.retain:
            return  # live traffic during the sweep: the ingest's own subscriptions take it
        parts = msg.topic.split("/", 3)
        device = parts[2][:64] if len(parts) == 4 and parts[0] == ROOT else "?"
        channel = parts[3] if len(parts) == 4 else ""
        if channel in LEGITIMATE and len(msg.payload) <= max_status_bytes:
            return
        with lock:
            if len(result.found) < MAX_FOUND:
                result.found.append(RetainedJunk(device, msg.topic[:300], len(msg.payload)))
            else:
                result.more += 1

    link = MqttLink(cfg.model_copy(update={"client_id": f"sweep-{cfg.client_id}"[:64], "session_expiry_s": 0}),
                    name="retained-sweep")
    link.start()
    try:
        if not link.wait_connected(timeout):
            log.warning("retained sweep: could not connect (%s); retained junk is not checked", link.last_error)
            return result
        link.subscribe_wait(f"{ROOT}/#", on, qos=0, timeout=timeout)
        link.subscribe_wait(END_MARKER, lambda _m: None, qos=0, timeout=timeout)
        result.done = True
    except Exception as exc:  # the sweep is a check beside the ingest: it must not stop it
        log.warning("retained sweep failed: %s; retained junk is not checked", exc)
    finally:
        link.close(offline=False)
    return result

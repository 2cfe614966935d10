"""The device uplink assembled: MQTT link + durable outbox + retained status, one start/close.

Wiring (agent side)::

    uplink = Uplink(cfg.uplink, site_id=..., device_id=..., vault_dir=vault.path, status=health_fn)
    sealer.add_listener(uplink.on_sealed)
    uplink.start()  ...  uplink.drain(60); uplink.close()
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.core.clock import Clock, SystemClock, iso_utc
from agent.core.model import SealedItem
from agent.core.threads import Worker
from agent.uplink.outbox import Outbox
from agent.uplink.settings import UplinkConfig
from agent.wire.mqtt import MqttLink, Will
from agent.wire.topics import DeviceTopics

log = logging.getLogger(__name__)

StatusProvider = Callable[[], dict[str, Any]]


class StatusPublisher:
    """Publishes a retained health document now, on every connect, and every ``interval_s``."""

    def __init__(self, link: MqttLink, topic: str, interval_s: float, build: Callable[[], dict[str, Any]]) -> None:
        self.link = link
        self.topic = topic
        self.interval_s = interval_s
        self.build = build
        self.published = 0
        self._wake = threading.Event()
        self._thread = Worker("uplink-status", self._run)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            if self.link.connected:
                try:
                    payload = json.dumps(self.build(), sort_keys=True, default=str).encode()
                    self.link.publish(self.topic, payload, qos=1, retain=True, content_type="application/json")
                    self.published += 1
                except Exception:
                    log.exception("status: could not build or publish the status document")
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def close(self) -> None:
        self._thread.stopping.set()
        self._wake.set()
        self._thread.stop(10)


class Uplink:
    """Everything the device sends goes through here; ``on_sealed`` is the Sealer listener."""

    def __init__(self, cfg: UplinkConfig, *, site_id: str, device_id: str, vault_dir: Path | None = None,
                 status: StatusProvider | None = None, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.topics = DeviceTopics(site_id, device_id)
        self.link = MqttLink(cfg.mqtt, will=Will(self.topics.availability, b"offline"), name="uplink")
        self.outbox = Outbox(cfg.outbox_path, self.link, self.topics, chunk_bytes=cfg.chunk_bytes,
                             window_bytes=cfg.window_bytes, max_inflight=cfg.mqtt.max_inflight,
                             alert_kinds=cfg.alert_kinds, require_subscriber=cfg.require_subscriber,
                             retry_after_s=cfg.retry_after_s, vault_dir=vault_dir)
        self._extra = status
        self._more: list[StatusProvider] = []
        self.status = StatusPublisher(self.link, self.topics.status, cfg.status_interval_s, self.status_document)
        self.link.add_connect_listener(self._connected)
        self._closed = False

    def _connected(self, _session_present: bool) -> None:
        self.outbox.wake()
        self.status.wake()

    def on_sealed(self, item: SealedItem) -> None:
        self.outbox.on_sealed(item)

    def status_document(self) -> dict[str, Any]:
        """Health for dashboards: uplink, outbox depth, disk; the agent adds GPS/clock/camera."""
        stats = self.outbox.stats()
        try:
            disk = shutil.disk_usage(Path(self.cfg.outbox_path).parent)
            disk_doc: dict[str, Any] = {"free_bytes": disk.free, "total_bytes": disk.total}
        except OSError as exc:
            disk_doc = {"error": str(exc)}
        doc: dict[str, Any] = {
            "device": self.topics.device, "site": self.topics.site, "time": iso_utc(self.clock.wall_ns()),
            "uplink": {"connected": self.link.connected, "connects": self.link.connects,
                       "last_error": self.link.last_error, "max_packet_size": self.link.max_packet_size},
            "outbox": dataclasses.asdict(stats), "disk": disk_doc,
            "last_sealed": stats.last_sealed,
        }
        for provider in ([self._extra] if self._extra is not None else []) + self._more:
            try:
                doc.update(provider())
            except Exception as exc:
                doc["status_error"] = f"{type(exc).__name__}: {exc}"
        return doc

    def add_status(self, provider: StatusProvider) -> None:
        """One more part of the status document (e.g. the officer trust version)."""
        self._more.append(provider)

    def start(self) -> None:
        self.outbox.start()
        self.link.start()
        self.status.start()

    def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty; False if anything is still pending or was rejected."""
        drained = self.outbox.wait_drained(timeout)
        return drained and self.outbox.stats().rejected == 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.status.close()
        self.outbox.close()
        self.link.close()

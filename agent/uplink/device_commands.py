"""Wiring of officer commands and live view on the device: one object the runtime starts and closes.

The controller only sees injected callables (snapshot, status, selftest, seal, moment), so it is
testable without a camera, and live view reads the shared frame hub, so recording never stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.core.clock import Clock
from agent.core.model import Moment, SealedItem
from agent.core.vocab import NOTICE_COMMAND
from agent.uplink.command_controller import (
    CommandController,
    Handler,
    SnapshotArgs,
    inspection_handlers,
    mark_handler,
)
from agent.uplink.live import FrameSource, LiveManager
from agent.uplink.notices import NOTICES_FILE, NoticeBoard, notice_handler
from agent.uplink.settings_commands import CommandsConfig, LiveConfig
from agent.uplink.trust_bundle import TrustBundleApplier
from agent.wire.commands import CommandRequest, CommandVerifier, ReplayCache, TrustStore
from agent.wire.mqtt import MqttLink
from agent.wire.replies import DeviceSigner
from agent.wire.topics import DeviceTopics
from agent.wire.trust_bundle import TRUST_TOPIC

log = logging.getLogger(__name__)


class DeviceCommandService:
    """Subscribes to ``evidence/{site}/{device}/cmd`` and answers signed commands."""

    def __init__(self, link: MqttLink, topics: DeviceTopics, signer: DeviceSigner, clock: Clock, *,
                 commands: CommandsConfig, live: LiveConfig, frames: FrameSource,
                 moment: Callable[[], Moment], seal: Callable[..., SealedItem] | None,
                 replay_path: Path,
                 snapshot: Callable[[CommandRequest, SnapshotArgs], Mapping[str, Any]] | None = None,
                 open_inspection: Callable[[], dict[str, Any] | None] | None = None,
                 status: Callable[[], Mapping[str, Any]] | None = None,
                 selftest: Callable[[], Mapping[str, Any]] | None = None,
                 on_live: Callable[[bool], None] | None = None,
                 overlay: Callable[[Any, Moment], Any] | None = None) -> None:
        self.link, self.topics = link, topics
        self.replay = ReplayCache(commands.replay_db or replay_path, skew_ms=int(commands.clock_skew_s * 1000))
        self.trust = TrustStore(commands.trust_dir)
        verifier = CommandVerifier(topics.device, self.trust, self.replay, clock, max_ttl_s=commands.max_ttl_s,
                                   skew_s=commands.clock_skew_s, max_bytes=commands.max_message_bytes)
        self.live = LiveManager(live, frames, self._publish_live, signer, device_id=topics.device,
                                site_id=topics.site, topic_for=topics.live, clock=clock, moment=moment, seal=seal,
                                on_active=on_live, overlay=overlay)
        handlers: dict[str, Handler] = dict(self.live.handlers())
        self.notices = NoticeBoard((commands.replay_db or replay_path).parent / NOTICES_FILE, clock,
                                   on_change=self._status_changed)
        if seal is not None:
            handlers["mark"] = mark_handler(seal, moment)
            handlers[NOTICE_COMMAND] = notice_handler(seal, moment, self.notices, topics.site)
            if open_inspection is not None:
                handlers.update(inspection_handlers(seal, moment, open_inspection))
                handlers["inspection.start"] = self._unlisting(handlers["inspection.start"])
        if snapshot is not None:
            handlers["snapshot"] = snapshot
        if status is not None:
            handlers["status"] = lambda _req, _args: status()
        if selftest is not None:
            handlers["selftest"] = lambda _req, _args: selftest()
        self.controller = CommandController(topics.device, verifier, signer, clock, self._publish_reply, handlers)
        self.enabled = commands.enabled
        self.bundles: TrustBundleApplier | None = None
        if commands.trust_admin is not None:
            self.bundles = TrustBundleApplier(
                commands.trust_dir, commands.trust_admin, clock, on_change=self._status_changed,
                seal=None if seal is None else lambda extra: seal("event", moment(), extra=extra))
        self._status_wake: Callable[[], None] | None = None
        self._closed = False

    def _unlisting(self, start: Handler) -> Handler:
        """``inspection.start`` that also takes its case off the upcoming inspections."""

        def handle(request: CommandRequest, args: Any) -> Mapping[str, Any]:
            result = start(request, args)
            self.notices.started(args.case)
            return result

        return handle

    def attach_status(self, uplink: Any) -> None:
        """Report the officer trust version and the upcoming inspections in the uplink's retained status (and
        republish it on a change)."""
        uplink.add_status(self.notices.status)
        if self.bundles is not None:
            uplink.add_status(self.bundles.status)
        self._status_wake = uplink.status.wake

    def _status_changed(self) -> None:
        if self._status_wake is not None:
            self._status_wake()

    def _publish_reply(self, topic: str, payload: bytes, correlation: bytes | None) -> None:
        self.link.publish(topic, payload, qos=1, correlation=correlation, content_type="application/json")

    def _publish_live(self, topic: str, payload: bytes, qos: int, on_done: Callable[[Any], None] | None = None) -> None:
        self.link.publish(topic, payload, qos=qos, content_type="application/x-evidence-live-frame", on_done=on_done)

    def start(self) -> None:
        if not self.enabled:
            log.info("officer commands disabled in config")
            return
        officers = self.trust.officers()
        log.info("commands on %s; %d trusted officer key(s) in %s", self.topics.cmd, len(officers),
                 self.trust.directory)
        if self.bundles is not None:  # first: a retained bundle is installed before commands are answered
            log.info("officer trust from signed bundles on %s (fleet admin %s); installed version %d",
                     TRUST_TOPIC, self.bundles.admin_cert_path, self.bundles.version())
            self.link.subscribe(TRUST_TOPIC, self.bundles.on_message, qos=1)
        self.link.subscribe(self.topics.cmd, self.controller.on_message, qos=1)

    def close(self) -> None:
        """End live sessions (sealed), close the replay cache; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.live.close()
        self.replay.close()

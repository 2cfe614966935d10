"""The running agent: wires source -> sealer -> vault and runs until told to stop.

Everything is built from the config plus injected clock/camera/GPS, so tests and the demo use
the same path as the systemd service. ``close()`` is idempotent and seals nothing half-way:
whatever was sealed before a stop (Ctrl-C, SIGTERM) stays intact.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.anchor.log import LogFiles
from agent.capture.base import CaptureBackend, backend_class
from agent.core.clock import Clock, SystemClock
from agent.core.errors import AgentError
from agent.core.health import Health
from agent.core.model import Frame, Moment, SealedItem
from agent.core.supervisor import Death, Supervisor
from agent.core.threads import Worker, stop_all
from agent.device.config import AgentConfig
from agent.device.parts import UNHEALTHY_EXIT_S, WatchedSealer, watch_parts
from agent.device.pipeline import FrameHub, Subscription
from agent.device.seal_log import SealLog
from agent.device.sealer import Sealer
from agent.device.sensors import Sensors
from agent.device.stills_part import Stills
from agent.device.summary import RunStats
from agent.device.watch_loops import seal_device_events, watch_clock
from agent.evidence.vault import IndexRow, Vault
from agent.gps.provider import GpsProvider
from agent.gps.settings import open_gps
from agent.gps.timequality import TimeQualityProbe
from agent.hardware.gpio import ButtonEvent, DeviceIO, TamperEvent
from agent.hardware.watchdog import SdNotifier, Watchdog
from agent.signing.keys import DeviceIdentity, load_identity

if TYPE_CHECKING:
    from agent.anchoring.service import AnchorService
    from agent.selftest.in_service import ServiceProbes
    from agent.uplink.device_commands import DeviceCommandService
    from agent.uplink.service import Uplink
    from agent.uplink.settings import UplinkConfig
    from agent.video.service import VideoService

log = logging.getLogger(__name__)

class Agent:
    """One device's agent: camera hub, stills, sealer and vault; components attach to ``sealer``."""

    def __init__(self, cfg: AgentConfig, *, clock: Clock | None = None, identity: DeviceIdentity | None = None,
                 camera: CaptureBackend | None = None, gps: GpsProvider | None = None,
                 camera_factory: Callable[[], CaptureBackend] | None = None, pin_factory: Any = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.stop_event = threading.Event()
        # every worker created from here on reports its death to this supervisor (agent.core.supervisor)
        self.parts = Health()
        self.supervisor = Supervisor("agent", escalate=self._escalate, on_death=self._worker_died, health=self.parts)
        self.supervisor.own()
        self.identity = identity or load_identity(cfg.identity.key_dir)
        self.vault = Vault(cfg.vault.path, quota_bytes=cfg.vault.quota_mb * 1024 * 1024)
        self.stats = RunStats()
        self.sealer = Sealer(self.vault, self.identity, device_id=cfg.device.id, site_id=cfg.device.site_id,
                             listeners=[self.stats.count], clock=self.clock)
        self.sealer.add_listener(SealLog().on_sealed)  # INFO: per minute, one line per kind sealed
        # the one sealing path of the running agent: media passes the quota, records go straight through
        self.store = WatchedSealer(self.sealer, self.vault, moment=self.moment,
                                   evictable=lambda r: self.evictable(r), health=self.parts)
        self.gps = gps or open_gps(cfg.gps, self.clock)
        self.sensors = Sensors(self.clock, self.gps, TimeQualityProbe(self.clock, cfg.time))
        self.video: VideoService | None = None
        native = cfg.video.enabled and camera is None and "h264" in backend_class(cfg.capture.backend).capabilities
        if cfg.video.enabled:
            from agent.video.service import VideoService

            # one fps, still interval and still quality: [capture]'s (stills are timed by the still loop)
            vcfg = cfg.video.model_copy(update={"fps": cfg.capture.fps, "still_interval_s": 0.0,
                                                "still_quality": cfg.capture.jpeg_quality})
            if vcfg.c2pa.tsa_url is None and cfg.anchor.tsa.url is not None:  # C2PA signatures time-stamped too
                c2pa_cfg = vcfg.c2pa.model_copy(update={"tsa_url": str(cfg.anchor.tsa.url)})
                vcfg = vcfg.model_copy(update={"c2pa": c2pa_cfg})
            self.video = VideoService(
                vcfg, sealer=self.store, vault=self.vault, identity=self.identity,
                sensors=self.sensors, device_id=cfg.device.id, site_id=cfg.device.site_id,
                camera=camera.describe() if camera is not None else cfg.capture.backend,
                picamera2=(cfg.capture.to_settings(), self.clock, cfg.capture.picamera2) if native else None)
        self.stills = Stills(self)
        self.full_stills = self.stills.full
        if native and self.video is not None:
            # picamera2 encodes the main stream itself (hardware H.264 where the board has it); the hub
            # carries the lores stream to analytics, stills and live view.
            camera, camera_factory = self.video.recorder.lores_backend(), None  # type: ignore[union-attr]
        elif camera is None:
            def camera_factory() -> CaptureBackend:  # a closed backend cannot reopen: each attempt gets a new one
                return backend_class(cfg.capture.backend)(cfg.capture.to_settings(), self.clock)

            camera = camera_factory()
        assert camera is not None
        self.watchdog = Watchdog(SdNotifier(), self.clock, stale_after_s=10, healthy=self._unhealthy_reason)
        self.hub = FrameHub(camera, on_error=self._camera_failed, on_frame=self._on_frame, reopen=camera_factory,
                            on_event=self._camera_event)
        self._device_events: queue.Queue[TamperEvent | ButtonEvent | None] = queue.Queue()
        self.device = DeviceIO(cfg.gpio, self.clock, on_tamper=self._device_events.put,
                               on_button=self._device_events.put, pin_factory=pin_factory)
        self.uplink: Uplink | None = None
        self.commands: DeviceCommandService | None = None
        if cfg.uplink is not None and cfg.uplink.enabled:
            self._build_uplink(cfg.uplink)
        self.anchoring: AnchorService | None = None
        if cfg.anchor.enabled:
            from agent.anchoring.service import AnchorService

            self.anchoring = AnchorService(cfg.anchor, sealer=self.sealer, moment=self.moment, clock=self.clock,
                                           vault_dir=cfg.vault.path, device_id=cfg.device.id)
        self._threads: list[Worker] = []
        self._closed = False
        self._ready = False
        self._final_checkpoint = False
        self.on_close: list[Callable[[], None]] = []
        from agent.device.voice_part import attach_voice  # two-way voice: a separate part (issue 23)

        self.voice = attach_voice(self)
        from agent.device.zoom_part import attach_zoom  # digital zoom on request: a separate part (issue 23)

        self.zoom = attach_zoom(self)
        if self.zoom is not None:
            zoom = self.zoom
            self.full_stills.zoom = lambda: zoom.region

    # -- supervision ---------------------------------------------------------------------------
    def _unhealthy_reason(self) -> str | None:
        """None while every essential part is healthy; else which part and why (the watchdog withholds)."""
        bad = self.parts.unhealthy()
        if not bad:
            return None
        return "; ".join(f"{p}: {s.reason}" for p, s in sorted(bad.items()))

    def _worker_died(self, death: Death, action: str) -> None:
        """Seal the death as an ``internal_error`` event (with an uplink: an alert) while the vault works."""
        self.stats.errors.append(f"{death.part}: {death.error}")
        try:
            self.store.seal("event", self.sensors.moment(),
                            extra={"type": "internal_error", "phase": "onset", "part": death.part,
                                   "details": death.error[:500], "action": action})
        except Exception as exc:
            log.error("could not seal the death of %s: %s", death.part, exc)

    def _escalate(self, reason: str) -> None:
        """A part could not be kept running: stop, and ``run`` exits non-zero for systemd's Restart=."""
        log.critical("giving up: %s; stopping so that the service is restarted", reason)
        self.stop_event.set()

    @property
    def failed(self) -> str | None:
        """Why the process gave up (a part died for good or stayed unhealthy), or None."""
        return self.supervisor.failed

    def _check_health(self) -> None:
        """Escalate when an essential part (not the camera: the hub reconnects and the watchdog covers it)
        has been unhealthy for UNHEALTHY_EXIT_S."""
        for part, state in self.parts.unhealthy().items():
            if part != "camera" and time.monotonic() - state.since_mono >= UNHEALTHY_EXIT_S:
                self.supervisor.give_up(f"{part} unhealthy for {UNHEALTHY_EXIT_S:g} s: {state.reason}")
                return

    def _build_uplink(self, ucfg: UplinkConfig) -> None:
        from agent.uplink.device_commands import DeviceCommandService
        from agent.uplink.service import Uplink

        self.uplink = Uplink(ucfg, site_id=self.cfg.device.site_id, device_id=self.cfg.device.id,
                             vault_dir=self.vault.path, status=self.health, clock=self.clock)
        self.sealer.add_listener(self.uplink.on_sealed)  # before start(): the restart record goes out too
        self.commands = DeviceCommandService(
            self.uplink.link, self.uplink.topics, self.identity, self.clock, commands=ucfg.commands,
            live=ucfg.live, frames=self.hub, moment=self.sensors.moment, seal=self.store.seal,
            replay_path=Path(ucfg.outbox_path).parent / "replay.sqlite", snapshot=self.stills.snapshot_command,
            open_inspection=lambda: self.sealer.inspection, status=self.health, selftest=self._selftest_command,
            on_live=self.device.set_live, overlay=self._live_overlay())
        self.commands.attach_status(self.uplink)  # the officer trust version in the retained status

    def _live_overlay(self) -> Callable[[Frame, Moment], Frame] | None:
        """Live view carries the same burn-in as the recording when the config turns it on."""
        if not (self.cfg.video.enabled and self.cfg.video.overlay):
            return None
        from agent.video.overlay import Overlay

        overlay = Overlay(self.cfg.device.id, self.cfg.device.site_id)
        return lambda frame, moment: overlay.apply(frame, moment.gps)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Seal the restart record, then start the camera and the still schedule."""
        self.supervisor.own(default=True)
        self.supervisor.start()
        watch_parts(self.parts, self.supervisor, self.uplink, self.video)
        self.sealer.start(self.sensors.moment())  # the run's first record: nothing of this boot comes before it
        if self.anchoring is not None:
            self.anchoring.start()
        if self.uplink is not None and self.commands is not None:
            self.commands.start()
            self.uplink.start()
        self._spawn("device-events", lambda: seal_device_events(self, self._device_events))
        self.device.start()  # an enclosure found open at start is sealed as a tamper event
        if self.video is not None:
            frames = self.hub.subscribe("video", maxsize=30)
            self.video.start()
            self.video.run_from(lambda: self._next_frame(frames))
            self.device.set_recording(True)
        self.hub.start()
        self._spawn("stills", self.stills.loop)
        self._spawn("clock-watch", lambda: watch_clock(self))

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = Worker(name, lambda _stopping: target(), stopping=self.stop_event)  # the loops watch stop_event
        t.start()
        self._threads.append(t)

    def run(self, seconds: float | None = None) -> None:
        """Block until ``stop()`` (signal handler), the camera source ends (a file), or ``seconds`` pass."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self.stop_event.is_set() and not self.hub.ended.is_set():
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return
            self.stop_event.wait(left)
            self._check_health()

    def stop(self) -> None:
        self.stop_event.set()

    def stop_capture(self) -> None:
        """Stop producing evidence (camera, stills, device events); the uplink keeps draining."""
        self.stop_event.set()
        for hook in reversed(self.on_close):
            try:
                hook()
            except Exception:
                log.exception("close hook failed")
        self.on_close.clear()
        if self.commands is not None:
            self.commands.close()  # ends live sessions and seals them
        if self.video is not None:
            self.video.close()  # closes and seals the open segment
            self.device.set_recording(False)
        self.watchdog.close()
        self.hub.close()
        self.device.close()
        self._device_events.put(None)
        stop_all(self._threads, 10)
        self._threads.clear()
        if self.anchoring is not None and not self._final_checkpoint:
            self._final_checkpoint = True
            try:
                self.anchoring.final_checkpoint()  # the tail is committed (and then drained), not just full batches
            except AgentError as exc:
                log.error("final checkpoint failed: %s", exc)

    def drain(self, timeout: float) -> bool:
        """Wait for everything sealed to be acknowledged by the broker; True without an uplink."""
        return True if self.uplink is None else self.uplink.drain(timeout)

    def close(self) -> None:
        """Stop everything and join every thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.supervisor.close()  # deaths while stopping are logged, not acted on
        self.stop_capture()
        if self.anchoring is not None:
            self.anchoring.close()
        if self.uplink is not None:
            self.uplink.close()
        self.stills.close()
        self.sensors.close()
        self.vault.close()

    # -- work --------------------------------------------------------------------------------
    def moment(self) -> Moment:
        return self.sensors.moment()

    def _next_frame(self, sub: Subscription) -> Frame | None:
        """The recorder's frame source: None once capture has stopped and the queue is empty."""
        while True:
            frame = sub.get(timeout=0.5)
            if self.store.full and frame is not None:
                if self.stop_event.is_set():
                    return None  # stopping while full: end the stream rather than wait for room forever
                continue  # no room: recording pauses (the open segment gets no frames) until space returns
            if frame is not None or self.stop_event.is_set() or self.hub.ended.is_set():
                return frame

    @property
    def disk_reserve_bytes(self) -> int:
        return self.store.disk_reserve_bytes

    def take_still(self, reason: str = "schedule", extra: dict[str, Any] | None = None) -> SealedItem | None:
        """Seal the newest frame as a JPEG still (agent.device.stills_part); None without a frame or room."""
        return self.stills.take(reason, extra)

    def take_full_still(self, reason: str, extra: dict[str, Any] | None = None) -> SealedItem | None:
        """A still at the camera's full sensor while the video records (agent.device.full_stills)."""
        return self.stills.take_full(reason, extra)

    def evictable(self, row: IndexRow) -> bool:
        """Media may leave the device only once the broker acknowledged it and an anchor covers its record."""
        if self.uplink is None or not self.uplink.outbox.is_delivered(row.record_hash, "media"):
            return False
        if self.anchoring is None:
            return False
        return row.seq < LogFiles(self.vault.path / "log").anchored_size()

    def health(self) -> dict[str, Any]:
        """Status for the retained MQTT status topic and the officer's `status` command."""
        moment = self.sensors.moment()
        last = self.stats.last
        return {
            "gps": moment.gps.as_record(), "clock": moment.time.as_record(),
            "camera": {"source": self.hub.camera.describe(), "frames": self.hub.frames_read,
                       "error": None if self.hub.error is None else str(self.hub.error)},
            "vault": {"items": self.vault.count(), "media_bytes": self.vault.usage_bytes(),
                      "quota_bytes": self.vault.quota_bytes, "full": self.store.full},
            "last_item": None if last is None else {"seq": last.seq, "kind": last.kind, "hash": last.record_hash},
            "health": self.parts.report(),
            # what a run's summary says too: alarms raised, media sealed without C2PA, errors
            "evidence": {"alarms": dict(self.stats.alarms), "c2pa_failures": self.stats.c2pa_failures,
                         "last_c2pa_error": self.stats.last_c2pa_error, "errors": len(self.stats.errors),
                         "last_error": self.stats.errors[-1] if self.stats.errors else None},
        }

    def selftest_probes(self) -> ServiceProbes:
        """What the in-service self-test reads (agent.device.selftest_part)."""
        from agent.device.selftest_part import service_probes

        return service_probes(self)

    def _selftest_command(self) -> dict[str, Any]:
        from agent.selftest.in_service import selftest_in_service

        record: dict[str, Any] = selftest_in_service(self.selftest_probes()).as_record()
        return record

    def _on_frame(self, frame: Frame) -> None:
        self.watchdog.heartbeat()
        self.parts.ok("camera")
        if not self._ready:
            self._ready = True
            self.watchdog.ready(f"capturing {self.hub.camera.describe()}")
            self.watchdog.start()

    def _camera_event(self, kind: str, details: dict[str, Any]) -> None:
        """camera_lost / camera_restored from the hub's reconnect loop: sealed (and sent as alerts)."""
        lost = kind == "camera_lost"
        self.device.set_error(lost)
        if not lost and self.zoom is not None:
            self.zoom.camera_restored()  # a camera that zooms itself reopens at its full view: sealed
        if lost:
            self.parts.fail("camera", str(details.get("details")))
            self.stats.errors.append(str(details.get("details")))
        try:
            self.store.seal("event", self.sensors.moment(),
                            extra={"type": kind, "phase": "onset" if lost else "end", **details})
        except AgentError:
            log.exception("could not seal %s", kind)

    def _camera_failed(self, exc: Exception) -> None:
        self.parts.fail("camera", f"failed: {exc}")
        self.stats.errors.append(str(exc))
        self.device.set_error(True)
        try:
            self.store.seal("event", self.sensors.moment(),
                            extra={"type": "camera_failed", "phase": "onset", "details": str(exc)})
        except AgentError:
            log.exception("could not seal the camera failure")

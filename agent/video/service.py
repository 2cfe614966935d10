"""One object that wires recorder, analytics, overlay, C2PA and sealing from a VideoConfig.

Usage (the agent runtime / demo)::

    video = VideoService(cfg.video, sealer=sealer, vault=vault, identity=identity, sensors=sensors,
                         device_id=..., site_id=..., camera=cam.describe())
    video.start()
    thread = video.run_from(lambda: sub.get())   # or push(frame) from your own loop
    ...
    video.request_still()                         # Future[SealedItem]
    video.close()                                 # closes the open segment, seals everything queued
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from agent.capture.base import CaptureSettings
from agent.core.clock import Clock
from agent.core.model import Frame, SealedItem
from agent.signing.c2pa import C2paSigner
from agent.signing.exif import DeviceTags
from agent.signing.keys import DeviceIdentity
from agent.video.analytics import Analyzer
from agent.video.overlay import Overlay
from agent.video.recorder import MomentSource, Recorder, RecorderThread
from agent.video.sealing import MediaSealer, SealerLike
from agent.video.settings import VideoConfig

if TYPE_CHECKING:
    from agent.capture.picamera2 import Picamera2Config
    from agent.video.picamera2_recorder import Picamera2Recorder


class VideoService:
    """Recorder (frame loop) -> MediaSealer (worker thread) -> Sealer; close() is idempotent."""

    def __init__(self, cfg: VideoConfig, *, sealer: SealerLike, vault: Any, identity: DeviceIdentity | None,
                 sensors: MomentSource, device_id: str, site_id: str, camera: str = "",
                 on_sealed: Callable[[SealedItem], None] | None = None,
                 picamera2: tuple[CaptureSettings, Clock, Picamera2Config] | None = None) -> None:
        self.cfg = cfg
        signer = None
        if cfg.c2pa.enabled and (cfg.c2pa.video or cfg.c2pa.stills) and identity is not None:
            signer = C2paSigner(identity.sign, identity.chain, tsa_url=cfg.c2pa.tsa_url,
                                claim_generator=cfg.c2pa.claim_generator, thumbnail=cfg.c2pa.thumbnail)
        if identity is None:
            cfg = cfg.model_copy(update={"c2pa": cfg.c2pa.model_copy(update={"enabled": False})})
        self.media = MediaSealer(sealer, cfg, staging=vault.staging_path, sensors=sensors, c2pa=signer,
                                 camera=camera, on_sealed=on_sealed,
                                 device=DeviceTags(device_id, site_id, camera))
        analyzer = Analyzer(cfg.analytics) if cfg.analytics.enabled else None
        self.recorder: Recorder | Picamera2Recorder
        if picamera2 is not None:  # native H.264 from the camera; lores frames are pushed for analytics/stills
            from agent.video.picamera2_recorder import Picamera2Recorder

            settings, clock, pi = picamera2
            self.recorder = Picamera2Recorder(
                cfg, settings=settings, clock=clock, staging=vault.staging_path, sensors=sensors,
                on_segment=self.media.submit, on_still=self.media.submit, on_event=self.media.submit,
                analyzer=analyzer, pi=pi)
        else:
            self.recorder = Recorder(
                cfg, staging=vault.staging_path, sensors=sensors,
                on_segment=self.media.submit, on_still=self.media.submit, on_event=self.media.submit,
                analyzer=analyzer, overlay=Overlay(device_id, site_id) if cfg.overlay else None)
        self._thread: RecorderThread | None = None
        self._closed = False

    def start(self) -> None:
        self.media.start()

    def push(self, frame: Frame) -> None:
        self.recorder.push(frame)

    def run_from(self, next_frame: Callable[[], Frame | None], *, max_frames: int | None = None) -> RecorderThread:
        """Record on a named thread from ``next_frame`` (returns None at end of stream)."""
        self._thread = RecorderThread(next_frame, self.recorder, max_frames=max_frames)
        self._thread.start()
        return self._thread

    def request_still(self, reason: str = "request", extra: dict[str, Any] | None = None) -> Future[SealedItem]:
        return self.recorder.request_still(reason, extra)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._thread.close()
        self.recorder.close()
        self.media.close()

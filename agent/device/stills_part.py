"""The running agent's stills: on its schedule, on the device's button, and on an officer's snapshot.

A still comes from the recorder's own frame stream while video records (same overlay and C2PA Content
Credentials as the segments, without interrupting them); without video it is sealed on the calling thread from
the frame hub's newest frame. A snapshot may ask for the full sensor (:mod:`agent.device.full_stills`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.capture.base import encode_jpeg
from agent.core.errors import AgentError
from agent.core.model import Frame, Moment, SealedItem
from agent.device.full_stills import FullStills, StillBusy
from agent.evidence.vault import VaultFullError
from agent.signing.c2pa import C2paSigner, StillCredentials
from agent.signing.exif import DeviceTags, with_exif

if TYPE_CHECKING:
    from agent.device.runtime import Agent
    from agent.wire.commands import CommandRequest

log = logging.getLogger(__name__)

RECORDER_STILL_TIMEOUT_S = 10.0


class Stills:
    """Takes and seals the agent's stills; ``close()`` is idempotent."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        cfg = agent.cfg
        video = agent.video
        self.full = FullStills(lambda: agent.hub.camera, lambda: agent.hub.latest_captured, agent.sensors.moment,
                               submit=video.media.submit if video is not None else None, seal_frame=self.seal_frame)
        self._c2pa: StillCredentials | None = None
        if not cfg.video.enabled and cfg.video.c2pa.enabled and cfg.video.c2pa.stills:  # stills-only: C2PA too
            c2 = cfg.video.c2pa
            signer = C2paSigner(agent.identity.sign, agent.identity.chain, thumbnail=c2.thumbnail,
                                tsa_url=c2.tsa_url or (str(cfg.anchor.tsa.url) if cfg.anchor.tsa.url else None),
                                claim_generator=c2.claim_generator)
            self._c2pa = StillCredentials(signer, agent.vault.staging_path)

    def take(self, reason: str = "schedule", extra: dict[str, Any] | None = None) -> SealedItem | None:
        """Seal the newest frame as a JPEG still; None when no frame has arrived yet or the vault is full."""
        agent = self._agent
        if agent.store.full and not agent.store.try_recover():
            return None
        if agent.video is not None and not agent.stop_event.is_set():
            try:
                return agent.video.request_still(reason, extra).result(timeout=RECORDER_STILL_TIMEOUT_S)
            except VaultFullError:
                return None  # the quota policy sealed vault_full; retried with the next still
            except (TimeoutError, concurrent.futures.TimeoutError):
                raise AgentError(f"the recorder delivered no frame for the still within "
                                 f"{RECORDER_STILL_TIMEOUT_S:g} s") from None
        frame = agent.hub.latest
        if frame is None:
            return None
        moment = replace(agent.sensors.moment(), wall_ns=frame.wall_ns, mono_ns=frame.mono_ns)
        return self.seal_frame(frame, moment, reason, extra or {})

    def take_full(self, reason: str, extra: dict[str, Any] | None = None) -> SealedItem | None:
        """A still at the camera's full sensor (the source's native size) while the video records; one at a time.
        None when no frame has arrived yet or the vault is full."""
        store = self._agent.store
        if store.full and not store.try_recover():
            return None
        try:
            return self.full.take(reason, extra)
        except VaultFullError:
            return None

    def seal_frame(self, frame: Frame, moment: Moment, reason: str, extra: dict[str, Any]) -> SealedItem | None:
        """Seal one frame as a JPEG still on this thread (no video running): EXIF, C2PA when configured."""
        agent = self._agent
        camera = agent.hub.camera.describe()
        tags = DeviceTags(agent.cfg.device.id, agent.cfg.device.site_id, camera)
        jpeg = with_exif(encode_jpeg(frame, agent.cfg.capture.jpeg_quality), moment, tags,
                         width=frame.width, height=frame.height)
        info = {"reason": reason, "frame_index": frame.index, "width": frame.width,
                "height": frame.height, "camera": camera, **extra}
        media: Path | bytes = jpeg
        if self._c2pa is not None:
            media, info["c2pa"] = self._c2pa.embed(
                jpeg, title=f"still {frame.index}", gps=moment.gps, captured_ns=moment.wall_ns,
                extra={"frame_index": frame.index, "reason": reason, "device_id": tags.device_id,
                       "site_id": tags.site_id})
        try:
            item = agent.store.seal("still", moment, media=media, media_type="image/jpeg", ext="jpg", extra=info)
        except VaultFullError:
            if isinstance(media, Path):  # a C2PA copy made for this still
                media.unlink(missing_ok=True)
            return None
        agent.store.recovered()
        return item

    def loop(self) -> None:
        """The still schedule (``[capture] still_interval_s``); it outlives one bad still."""
        agent = self._agent
        interval = agent.cfg.capture.still_interval_s
        while not agent.stop_event.wait(interval if agent.hub.latest is not None else 0.05):
            if agent.hub.latest is None:
                continue
            try:
                self.take()
            except (AgentError, OSError, sqlite3.Error) as exc:
                log.error("still failed: %s", exc)
                agent.stats.errors.append(str(exc))

    def snapshot_command(self, request: CommandRequest, args: Any = None) -> dict[str, Any]:
        """An officer's still; a label (identity_document, ...) and note are sealed with it."""
        extra: dict[str, Any] = {"officer": request.officer, "nonce": request.nonce}
        for key in ("label", "note"):
            if getattr(args, key, None) is not None:
                extra[key] = getattr(args, key)
        full = getattr(args, "resolution", "stream") == "full"
        try:
            item = self.take_full("officer", extra) if full else self.take("officer", extra=extra)
        except StillBusy as exc:
            from agent.wire.commands import CommandRejected

            raise CommandRejected("busy", str(exc)) from None
        if item is None:
            raise AgentError("no camera frame available yet")
        sealed = item.record.get("extra") or {}
        return {"seq": item.seq, "record_hash": item.record_hash, "media": item.record["media"],
                "label": extra.get("label"), "gps": item.record["gps"], "time": item.record["time"],
                "captured": item.record["captured"]["wall"], "resolution": "full" if full else "stream",
                "width": sealed.get("width"), "height": sealed.get("height")}

    def close(self) -> None:
        if self._c2pa is not None:
            self._c2pa.close()
            self._c2pa = None

"""Digital zoom as a part of the running agent: the signed ``view.zoom`` command, each change sealed.

The zoom is applied where every consumer sees it: in the camera itself when the backend zooms natively
(picamera2 ``ScalerCrop``: recording, lores, stills and live view all show the region, from the full sensor),
else by the frame hub before fan-out (crop and scale back to the stream size, ``agent.capture.zoom``). Either
way each frame's ``view`` says which part of the full view it shows -- on picamera2 from the crop libcamera
reports it applied to that very frame -- so analytics re-baseline on the frame where a zoom takes effect and
the live headers tell the officer what is shown.

A zoom needs a running live view (it is for looking closer while watching); it ends with the last live session
(``live.stop`` or keepalive expiry), when the officer resets it, and when a natively zooming camera is reopened.
It is never kept across a restart: the agent always starts at the full view. Every change is sealed as an
``event`` of type ``view_zoom`` naming the region (normalised and in sensor or frame pixels), why it changed
and, for an officer's command, the officer and the signed command itself.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agent.capture.base import CaptureBackend
from agent.capture.zoom import crop_rect, crop_scale
from agent.core.errors import AgentError
from agent.core.model import Frame, SealedItem
from agent.core.view import FULL_VIEW, ViewRegion
from agent.core.vocab import VIEW_ZOOM, ZOOM_COMMAND
from agent.wire.commands import CommandRejected, CommandRequest
from agent.wire.zoom import ZoomArgs

if TYPE_CHECKING:
    from agent.device.runtime import Agent

log = logging.getLogger(__name__)

Rect = tuple[int, int, int, int]


class ViewZoom:
    """The zoom state, its frame transform and its command handler."""

    def __init__(self, camera: Callable[[], CaptureBackend], seal: Callable[[dict[str, Any]], SealedItem],
                 live_active: Callable[[], list[str]], frame_size: Callable[[], tuple[int, int]]) -> None:
        self._camera, self._seal, self._live_active, self._frame_size = camera, seal, live_active, frame_size
        self._lock = threading.Lock()  # one change at a time (command thread, live streamer, camera thread)
        self.region: ViewRegion = FULL_VIEW  # read without the lock by the camera thread (one attribute)
        self._area_of: tuple[CaptureBackend | None, Rect | None] = (None, None)
        self.changes = 0

    # -- the frame path (camera thread) ---------------------------------------------------------------
    def _area(self, cam: CaptureBackend) -> Rect | None:
        seen, area = self._area_of
        if seen is not cam or area is None:
            area = cam.zoom_area()
            self._area_of = (cam, area)
        return area

    def transform(self, frame: Frame) -> Frame:
        """Crop and scale (no native zoom), or say which region the camera's own crop shows (native)."""
        area = self._area(self._camera())
        if area is None:
            region = self.region
            return frame if region.full else crop_scale(frame, region)
        crop = frame.sensor.scaler_crop if frame.sensor is not None else None
        if crop is None:  # the camera did not report its crop: the region asked for is all we know
            view = None if self.region.full else self.region
        else:
            shown = ViewRegion.of_pixels(crop, area)
            view = None if shown.full else shown
        return frame if view is None and frame.view is None else dataclasses.replace(frame, view=view)

    # -- the command ----------------------------------------------------------------------------------
    def handle(self, request: CommandRequest, args: ZoomArgs) -> Mapping[str, Any]:
        """``view.zoom``: refused without a live view (a reset is always accepted)."""
        if not args.reset and not self._live_active():
            raise CommandRejected("conflict", "no live view is running on this device: a zoom is for the live view "
                                              "and ends with it (start live view first)")
        return self._change(args.region, "reset" if args.reset else "officer", request)

    def on_live(self, active: bool) -> None:
        """LiveManager listener: the last live session ended."""
        if not active:
            self.reset("live_ended")

    def camera_restored(self) -> None:
        """A reopened camera that zooms natively starts at its default crop: record the return to the full view."""
        self._area_of = (None, None)
        if self._area(self._camera()) is not None:
            self.reset("camera_restored")

    def reset(self, reason: str) -> None:
        """Back to the full view (sealed) when zoomed."""
        if self.region.full:
            return
        try:
            self._change(FULL_VIEW, reason, None)
        except (AgentError, CommandRejected) as exc:
            log.error("could not reset the zoom (%s): %s", reason, exc)

    def _change(self, region: ViewRegion, reason: str, request: CommandRequest | None) -> Mapping[str, Any]:
        with self._lock:
            previous = self.region
            if region.same(previous, tol=1e-6):
                return {"changed": False, "view": region.as_record(), "seq": None}
            cam = self._camera()
            area = self._area(cam)
            if area is not None:  # picamera2: ScalerCrop within the control's limits, in sensor pixels
                rect, space, full = cam.set_view(region), "sensor", area
            else:
                w, h = self._frame_size()
                rect, space, full = ((0, 0, w, h) if region.full else crop_rect(region, w, h)), "frame", (0, 0, w, h)
            self.region = region
            self.changes += 1
            extra: dict[str, Any] = {
                "type": VIEW_ZOOM, "reason": reason, "view": region.as_record(), "previous": previous.as_record(),
                "pixels": {"space": space, "x": rect[0], "y": rect[1], "w": rect[2], "h": rect[3],
                           "full_view": list(full)},
                "camera": cam.describe()}
            if request is not None:
                extra.update(officer=request.officer, officer_key_id=request.key_id, command=dict(request.wire))
            try:
                item = self._seal(extra)
            except Exception:  # never a zoom without its record: back to what was sealed last, then refuse
                self.region = previous
                if area is not None:
                    cam.set_view(previous)
                raise
        log.info("view %s: %.2fx at (%.3f, %.3f) [%s %s] sealed as seq %d", reason, region.factor, *region.centre,
                 space, rect, item.seq)
        return {"changed": True, "view": region.as_record(), "pixels": extra["pixels"], "seq": item.seq,
                "record_hash": item.record_hash, "captured_wall_us": item.record["captured"]["wall_us"],
                "reason": reason}


def attach_zoom(agent: Agent) -> ViewZoom | None:
    """The zoom of ``agent`` when officer commands run (its handler added, its transform on the hub), else None."""
    commands = agent.commands
    if commands is None:
        return None
    hub = agent.hub

    def frame_size() -> tuple[int, int]:
        latest = hub.latest
        if latest is not None:
            return latest.width, latest.height
        return hub.camera.settings.width, hub.camera.settings.height

    zoom = ViewZoom(lambda: hub.camera, lambda extra: agent.store.seal("event", agent.sensors.moment(), extra=extra),
                    commands.live.active, frame_size)
    hub.transform = zoom.transform
    commands.controller.handlers[ZOOM_COMMAND] = zoom.handle
    commands.live.add_listener(zoom.on_live)
    return zoom

"""Full-resolution document stills: the camera's full sensor (or a source's native size), one at a time.

An officer's snapshot or check-in may ask for ``resolution: "full"``: the still is taken from the backend's
:meth:`~agent.capture.base.CaptureBackend.full_frame` (picamera2: the full-sensor main stream of a
``document_stills`` configuration, captured while H.264 keeps encoding lores; synthetic: its configured sensor;
files and streams: their native size) and sealed like any still -- EXIF, C2PA, the record -- while the video
keeps recording. Such a frame is ~18 MB (4608x2592 I420) and its JPEG several MB, so only one is taken at a time:
a second request while one is in flight is refused at once (:class:`StillBusy`), and the heap is trimmed after.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from agent.capture.base import CaptureBackend
from agent.capture.zoom import crop_pixels, crop_rect
from agent.core.errors import AgentError
from agent.core.memory import trim_heap
from agent.core.model import Frame, Moment, SealedItem
from agent.core.view import FULL_VIEW, ViewRegion
from agent.video.recorder import StillShot

log = logging.getLogger(__name__)

SEAL_TIMEOUT_S = 60.0  # EXIF + C2PA + hashing of a several-MB JPEG on a loaded Pi


class StillBusy(AgentError):
    """A full-resolution still is already being taken; the officer asks again once it is sealed."""


@dataclasses.dataclass
class FullStillStats:
    """What the last full-resolution still cost: seconds from request to sealed, JPEG bytes, peak RSS."""

    taken: int = 0
    refused_busy: int = 0
    last_seconds: float | None = None
    last_bytes: int | None = None
    peak_rss_mb: float | None = None  # the process's peak resident set after the still (ru_maxrss)


class FullStills:
    """Takes and seals full-resolution stills; ``take`` is called from the command thread."""

    def __init__(self, camera: Callable[[], CaptureBackend], latest: Callable[[], Frame | None],
                 moment: Callable[[], Moment], *, submit: Callable[[StillShot], None] | None,
                 seal_frame: Callable[[Frame, Moment, str, dict[str, Any]], SealedItem | None],
                 zoom: Callable[[], ViewRegion] = lambda: FULL_VIEW) -> None:
        self._camera, self._latest, self._moment = camera, latest, moment  # latest: as captured, before the zoom
        self._submit, self._seal_frame = submit, seal_frame
        self.zoom = zoom  # the digital zoom's region of the full view (agent/device/zoom_part.py)
        self._busy = threading.Lock()
        self.stats = FullStillStats()

    def take(self, reason: str, extra: dict[str, Any] | None = None) -> SealedItem | None:
        """Capture at full resolution and seal; None when no frame is there yet (or the vault is full).

        Raises StillBusy while another full-resolution still is in flight, CaptureError when the camera cannot
        give its full size without stopping the video (picamera2 without ``document_stills``)."""
        if not self._busy.acquire(blocking=False):
            self.stats.refused_busy += 1
            raise StillBusy("a full-resolution still is already being taken; ask again once it is sealed")
        started = time.monotonic()
        try:
            item = self._take(reason, dict(extra or {}))
        finally:
            trim_heap()  # the full frame and its JPEG are gone: give the ~40 MB back to the system
            self._busy.release()
        if item is not None:
            self.stats.taken += 1
            self.stats.last_seconds = round(time.monotonic() - started, 3)
            self.stats.last_bytes = int((item.record.get("media") or {}).get("size") or 0)
            self.stats.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            log.info("full-resolution still seq %d: %sx%s, %d bytes in %.2f s (peak RSS %.0f MB)", item.seq,
                     item.record["extra"].get("width"), item.record["extra"].get("height"), self.stats.last_bytes,
                     self.stats.last_seconds, self.stats.peak_rss_mb)
        return item

    def _take(self, reason: str, extra: dict[str, Any]) -> SealedItem | None:
        camera = self._camera()
        frame = camera.full_frame(self._latest())
        if frame is None:
            return None
        sensor = camera.sensor_size() or (frame.width, frame.height)
        frame, region = self._zoomed(camera, frame)
        extra.update({"resolution": "full", "sensor": {"width": sensor[0], "height": sensor[1]},
                      "region": region, "from": "camera", "overlay": False})
        moment = dataclasses.replace(self._moment(), wall_ns=frame.wall_ns, mono_ns=frame.mono_ns)
        if self._submit is None:  # no video: sealed on this thread, like the still schedule's stills
            return self._seal_frame(frame, moment, reason, extra)
        shot = StillShot(frame=frame, moment=moment, reason=reason, extra=tuple(sorted(extra.items())))
        del frame
        self._submit(shot)  # the media sealer's worker: same EXIF, C2PA and record as the recorder's stills
        return self._wait(shot.done)

    def _zoomed(self, camera: CaptureBackend, frame: Frame) -> tuple[Frame, dict[str, Any] | None]:
        """While zoomed, the still shows what the officer sees, at the most pixels the camera has for it.

        A camera that zooms itself (picamera2 ``ScalerCrop``) already gives the region, read out of the sensor:
        ``space: "sensor"``. Other sources are cut at their own full-size pixels, not scaled: ``space: "frame"``.
        """
        view = self.zoom()
        if view.full:
            return frame, None
        if camera.zoom_area() is not None:
            crop = frame.sensor.scaler_crop if frame.sensor is not None else None
            rect = tuple(crop) if crop is not None else None
            return frame, {"space": "sensor", "rect": list(rect) if rect else None, "view": view.as_record()}
        rect = crop_rect(view, frame.width, frame.height)
        full = (frame.width, frame.height)
        return crop_pixels(frame, rect), {"space": "frame", "rect": list(rect), "full_width": full[0],
                                          "full_height": full[1], "view": view.as_record()}

    @staticmethod
    def _wait(done: Future[SealedItem]) -> SealedItem:
        try:
            return done.result(timeout=SEAL_TIMEOUT_S)
        except (TimeoutError, FutureTimeout):
            raise AgentError(f"the full-resolution still was not sealed within {SEAL_TIMEOUT_S:g} s") from None

"""Frame fan-out: one capture thread, many consumers (recorder, stills, analytics, live view).

The camera is read by exactly one named thread; consumers subscribe with a bounded queue, so a slow
consumer drops its own frames (counted) instead of stalling capture or the other consumers.

A camera that fails (USB unplugged, RTSP stream gone) is reopened with exponential backoff when the hub
has a ``reopen`` factory; ``on_event`` hears ``camera_lost`` and ``camera_restored`` so they are sealed.
While the camera is away ``latest`` is None: no still is ever made from a frozen frame.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.capture.base import CaptureBackend, EndOfStream
from agent.core.errors import CaptureError
from agent.core.model import Frame
from agent.core.threads import Worker

log = logging.getLogger(__name__)

CameraEvent = Callable[[str, dict[str, Any]], None]  # ("camera_lost" | "camera_restored", details)


@dataclass
class Subscription:
    """A consumer's bounded frame queue; ``get`` returns None once the hub has stopped."""

    name: str
    frames: queue.Queue[Frame | None]
    dropped: int = 0

    def get(self, timeout: float | None = None) -> Frame | None:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None


class FrameHub:
    """Reads the camera on its own thread and hands every frame to each subscriber."""

    def __init__(self, camera: CaptureBackend, *, on_error: Callable[[Exception], None] | None = None,
                 on_frame: Callable[[Frame], None] | None = None,
                 reopen: Callable[[], CaptureBackend] | None = None, on_event: CameraEvent | None = None,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0) -> None:
        self.camera = camera
        self._reopen = reopen
        self._on_event = on_event
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.reconnects = 0
        self.open_attempts = 0
        self._on_frame = on_frame
        self._subs: list[Subscription] = []
        self._subs_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Worker | None = None
        self._latest: Frame | None = None
        self._latest_captured: Frame | None = None  # the same frame before ``transform`` (the full view)
        self._on_error = on_error
        self.frames_read = 0
        self.error: Exception | None = None
        self.ended = threading.Event()
        #: Applied to every frame before fan-out (the digital zoom, agent/device/zoom_part.py); a failure leaves
        #: the frame as captured (its ``view`` then says it shows the full view).
        self.transform: Callable[[Frame], Frame] | None = None

    def subscribe(self, name: str, maxsize: int = 4) -> Subscription:
        sub = Subscription(name, queue.Queue(maxsize=maxsize))
        with self._subs_lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._subs_lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def latest(self) -> Frame | None:
        """The most recent frame (for stills on request without waiting)."""
        return self._latest

    @property
    def latest_captured(self) -> Frame | None:
        """The most recent frame as the camera gave it, before the digital zoom (a zoomed document still is cut
        from it at the source's own pixels)."""
        return self._latest_captured

    def start(self) -> None:
        self.camera.open()
        self._thread = Worker("frame-hub", self._run, stopping=self._stop)
        self._thread.start()

    def _run(self, stopping: threading.Event) -> None:
        while True:
            exc = self._read_until_failure()
            if exc is None or self._reopen is None or stopping.is_set():
                break
            if not self._recover(exc):
                break
        self.ended.set()
        with self._subs_lock:
            subs = list(self._subs)
        for sub in subs:
            with contextlib.suppress(queue.Full):
                sub.frames.put_nowait(None)

    def _recover(self, exc: CaptureError) -> bool:
        """Reopen the source with exponential backoff until it delivers or the hub stops; False = stopped."""
        self._latest = self._latest_captured = None  # a frozen frame must not become a new still
        lost_mono = time.monotonic()
        log.error("camera lost: %s; reopening with backoff", exc)
        self._emit("camera_lost", {"details": str(exc), "camera": self.camera.describe()})
        delay, attempts, reopen = self.backoff_initial_s, 0, self._reopen
        while reopen is not None and not self._stop.wait(delay):
            attempts += 1
            self.open_attempts += 1
            try:
                camera = reopen()
                camera.open()
            except CaptureError as err:
                log.warning("camera reopen attempt %d failed: %s (next in %.1f s)", attempts, err,
                            min(delay * 2, self.backoff_max_s))
                delay = min(delay * 2, self.backoff_max_s)
                continue
            with contextlib.suppress(CaptureError):
                self.camera.close()
            self.camera = camera
            self.error = None
            self.reconnects += 1
            log.warning("camera restored after %.1f s (%d attempts)", time.monotonic() - lost_mono, attempts)
            self._emit("camera_restored", {"attempts": attempts, "down_s": round(time.monotonic() - lost_mono, 3),
                                           "camera": camera.describe()})
            if self._stop.is_set():  # close() raced with the reopen: it closed the old camera, not this one
                camera.close()
                return False
            return True
        return False

    def _emit(self, kind: str, details: dict[str, Any]) -> None:
        if self._on_event is not None:
            try:
                self._on_event(kind, details)
            except Exception:  # sealing trouble must not stop the camera thread
                log.exception("camera event hook failed for %s", kind)

    def _read_until_failure(self) -> CaptureError | None:
        """Read and fan out frames; returns the failure (None at the end of a finite source or on stop)."""
        try:
            while not self._stop.is_set():
                captured = self.camera.read()
                frame = self._transformed(captured)
                self._latest, self._latest_captured = frame, captured
                self.frames_read += 1
                if self._on_frame is not None:
                    self._on_frame(frame)  # cheap hooks only (watchdog heartbeat)
                with self._subs_lock:
                    subs = list(self._subs)
                for sub in subs:
                    try:
                        sub.frames.put_nowait(frame)
                    except queue.Full:
                        sub.dropped += 1
        except EndOfStream:
            log.info("camera source ended after %d frames", self.frames_read)
        except CaptureError as exc:
            if not self._stop.is_set():
                self.error = exc
                if self._reopen is not None:
                    return exc
                log.error("camera failed: %s", exc)
                if self._on_error:
                    self._on_error(exc)
        return None

    def _transformed(self, frame: Frame) -> Frame:
        transform = self.transform
        if transform is None:
            return frame
        try:
            return transform(frame)
        except Exception:  # the camera thread must go on; this frame is shown as captured
            log.exception("frame transform failed for frame %d", frame.index)
            return frame

    def close(self) -> None:
        """Stop reading and join the thread; idempotent."""
        self._stop.set()
        self.camera.close()
        if self._thread is not None:
            self._thread.stop(10)
            self._thread = None

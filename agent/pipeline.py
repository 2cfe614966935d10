"""Frame fan-out: one capture thread, many consumers (recorder, stills, analytics, live view).

The camera is read by exactly one named thread; consumers subscribe with a bounded queue, so a slow
consumer drops its own frames (counted) instead of stalling capture or the other consumers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.capture.base import CaptureBackend, EndOfStream
from agent.errors import CaptureError
from agent.model import Frame

log = logging.getLogger(__name__)


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
                 on_frame: Callable[[Frame], None] | None = None) -> None:
        self.camera = camera
        self._on_frame = on_frame
        self._subs: list[Subscription] = []
        self._subs_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._on_error = on_error
        self.frames_read = 0
        self.error: Exception | None = None
        self.ended = threading.Event()

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

    def start(self) -> None:
        self.camera.open()
        self._thread = threading.Thread(target=self._run, name="frame-hub", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.camera.read()
                self._latest = frame
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
                log.error("camera failed: %s", exc)
                self.error = exc
                if self._on_error:
                    self._on_error(exc)
        finally:
            self.ended.set()
            with self._subs_lock:
                subs = list(self._subs)
            for sub in subs:
                with contextlib.suppress(queue.Full):
                    sub.frames.put_nowait(None)

    def close(self) -> None:
        """Stop reading and join the thread; idempotent."""
        self._stop.set()
        self.camera.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

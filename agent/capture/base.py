"""One small base class every camera backend derives from, and a lazy factory to pick one.

Modelled on gpiozero's pin ``Factory``: callers never touch a camera library; they ask
:func:`open_backend` for a backend by name, and each backend's library (OpenCV, picamera2)
is imported only inside its own module, so the agent starts on machines without them.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar

from agent.core.clock import Clock
from agent.core.errors import CaptureError
from agent.core.model import Frame
from agent.core.view import ViewRegion

BACKENDS: dict[str, tuple[str, str]] = {
    "synthetic": ("agent.capture.synthetic", "SyntheticBackend"),
    "opencv": ("agent.capture.opencv", "OpenCVBackend"),
    "pyav": ("agent.capture.pyav", "PyAVBackend"),
    "picamera2": ("agent.capture.picamera2", "Picamera2Backend"),
}


class EndOfStream(CaptureError):
    """A finite source (a video file without ``loop``) has no more frames; not a fault."""


@dataclass(frozen=True)
class CaptureSettings:
    """What the caller asks of a camera. Backends may deliver a source's native size (files)."""

    width: int = 1280
    height: int = 720
    fps: float = 10.0
    seed: int = 0
    source: str | int | None = None  # device index, /dev/videoN, URL or file path (opencv only)
    realtime: bool = True  # pace frames at fps (files: at their own rate); False = as fast as possible
    loop: bool = False  # files: start again at the end instead of raising EndOfStream
    sensor_width: int | None = None  # synthetic: the "sensor" a full-resolution still is drawn at (None: stream)
    sensor_height: int | None = None

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise CaptureError(f"capture size must be positive, got {self.width}x{self.height}")
        if (self.sensor_width is None) != (self.sensor_height is None) or (
                self.sensor_width is not None and self.sensor_height is not None
                and (self.sensor_width < self.width or self.sensor_height < self.height)):
            raise CaptureError(f"sensor size {self.sensor_width}x{self.sensor_height} must be given whole and be at "
                               f"least the stream's {self.width}x{self.height}")
        if not self.fps > 0:
            raise CaptureError(f"capture fps must be positive, got {self.fps}")


class CaptureBackend:
    """Base class of camera backends.

    A backend MUST implement three hooks, each called with the backend's lock held:

    * ``_open()`` -- acquire the device/stream/file; raise :class:`CaptureError` naming the
      source when it cannot be opened.
    * ``_read() -> Frame`` -- block until the next frame and return it as an
      :class:`agent.core.model.Frame` (I420 preferred, or BGR uint8, running index from 0, wall/mono times from the
      injected clock or the sensor). Raise :class:`EndOfStream` at the end of a finite source,
      :class:`CaptureError` when the source stops delivering.
    * ``_close()`` -- release everything; called at most once.

    A backend MAY implement, and then list in ``capabilities``:

    * ``"still"`` -- :meth:`capture_still` returning JPEG bytes at full sensor resolution
      while frames keep flowing (picamera2 ``capture_request()``).
    * ``"h264"`` -- native/hardware H.264 encoding of the main stream (picamera2 encoders): with
      video on, the runtime records through the backend's native recorder; callers otherwise encode
      frames themselves (PyAV).
    * ``"sensor_timestamps"`` -- frame times come from the sensor (``SensorTimestamp``),
      not from the moment ``read()`` returned.
    * ``"simulated"`` -- frames are generated, not seen by a camera (self-test says so).

    Callers choose by capability (``"h264" in backend_class(name).capabilities``), never by name.

    The public :meth:`open`, :meth:`read` and :meth:`close` add the state checks, so hooks stay
    small. Use as a context manager; :meth:`close` is idempotent and may be called from another
    thread to interrupt a paced ``read()`` (hooks should wait on ``self._closing``, not sleep).
    """

    name: ClassVar[str] = "base"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: CaptureSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._state = "new"  # new -> open -> closed

    # -- public API ------------------------------------------------------------------
    def open(self) -> None:
        """Acquire the source. Opening an open backend does nothing; a closed one cannot reopen."""
        with self._lock:
            if self._state == "open":
                return
            if self._state == "closed":
                raise CaptureError(f"{self.name} capture was closed and cannot be reopened")
            self._open()
            self._state = "open"

    def read(self) -> Frame:
        """The next frame (blocks; paced at fps in realtime mode)."""
        with self._lock:
            if self._state != "open":
                raise CaptureError(f"{self.name} capture is {self._state}, not open")
            return self._read()

    def close(self) -> None:
        """Release the source; safe to call twice and from another thread."""
        self._closing.set()
        with self._lock:
            if self._state == "closed":
                return
            was_open = self._state == "open"
            self._state = "closed"
            if was_open:
                self._close()

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    def capture_still(self, quality: int = 90) -> bytes:
        """JPEG bytes at full resolution; only backends listing ``"still"`` provide it."""
        raise CaptureError(f"{self.name} backend has no native still capture; encode a frame with encode_jpeg()")

    def full_frame(self, latest: Frame | None) -> Frame | None:
        """A frame at the source's full native size for a document still, taken while frames keep flowing.

        The default is ``latest`` itself: files and network streams are delivered at their own size and a V4L2
        camera at the size it was opened with. Backends that stream below their sensor size override it
        (synthetic draws its configured sensor; picamera2 captures the main stream of a document-stills
        configuration). Raises CaptureError when this source cannot give its full size without stopping.
        """
        return latest

    def sensor_size(self) -> tuple[int, int] | None:
        """The full native size a :meth:`full_frame` has, when the backend knows it before capturing."""
        return None

    def describe(self) -> str:
        """Short human description for logs and selftest tables."""
        return self.name

    def zoom_area(self) -> tuple[int, int, int, int] | None:
        """Digital zoom in the camera itself: the full view as a sensor rectangle ``(x, y, w, h)``, or None when
        the backend has none and frames are cropped after capture (``agent.capture.zoom``)."""
        return None

    def set_view(self, region: ViewRegion) -> tuple[int, int, int, int]:
        """Zoom the camera to ``region`` of :meth:`zoom_area`; returns the sensor rectangle asked for (within
        the camera's limits). Only backends whose :meth:`zoom_area` is not None provide it."""
        raise CaptureError(f"{self.name} backend has no zoom of its own; frames are cropped after capture")

    def __enter__(self) -> CaptureBackend:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- hooks -----------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> Frame:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _pace(self, pacer: Pacer) -> None:
        """Wait for the pacer's next slot on the injected clock, or until close() is called."""
        delay = pacer.delay_s(self.clock.mono_ns())
        if delay > 0:
            self._closing.wait(min(delay, 10.0))
        if self._closing.is_set():
            raise CaptureError(f"{self.name} capture closed while waiting for a frame")


class Pacer:
    """Frame slots at a fixed rate. A consumer that falls behind gets the next frame at once and the
    schedule restarts from now: like a live camera, a slow reader never causes a catch-up burst."""

    def __init__(self, fps: float) -> None:
        self.period_ns = max(1, int(1e9 / fps))
        self._next_ns: int | None = None

    def reset(self) -> None:
        self._next_ns = None

    def delay_s(self, now_ns: int) -> float:
        """Seconds to wait before the next frame (0 when due), and book that slot."""
        if self._next_ns is None or now_ns - self._next_ns > self.period_ns:
            self._next_ns = now_ns
        delay = (self._next_ns - now_ns) / 1e9
        self._next_ns += self.period_ns
        return max(0.0, delay)


def encode_jpeg(frame: Frame, quality: int = 90) -> bytes:
    """JPEG-encode a frame (the still path for backends without ``"still"``)."""
    from agent.capture.pixels import encode_jpeg as encode

    return encode(frame, quality)


def backend_class(name: str) -> type[CaptureBackend]:
    """Import the named backend's module (only now) and return its class."""
    try:
        module_name, class_name = BACKENDS[name]
    except KeyError:
        raise CaptureError(f"unknown capture backend {name!r}; choose one of {', '.join(sorted(BACKENDS))}") from None
    cls: type[CaptureBackend] = getattr(importlib.import_module(module_name), class_name)
    return cls


def open_backend(name: str, settings: CaptureSettings, clock: Clock) -> CaptureBackend:
    """Create and open the named backend; use it as ``with open_backend(...) as cam:``."""
    backend = backend_class(name)(settings, clock)
    try:
        backend.open()
    except BaseException:
        backend.close()
        raise
    return backend

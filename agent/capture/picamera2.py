"""Raspberry Pi camera (libcamera) through picamera2, imported only when this backend opens.

picamera2 is not on PyPI in a usable form for the Pi: it comes from Raspberry Pi OS
(``apt install python3-picamera2``) and a virtual environment must be created with
``--system-site-packages`` to see it. Off a Pi, opening this backend raises a clear
CaptureError instead of an ImportError deep in a stack.

This module is the frame path (main or lores stream -> Frame, times from the request metadata)
plus full-resolution stills through ``capture_request()``. Continuous native H.264 recording of
the main stream lives in :mod:`agent.video.picamera2_recorder`, which reuses the helpers here.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from agent.capture.base import CaptureBackend, CaptureSettings
from agent.core.clock import Clock
from agent.core.errors import CaptureError
from agent.core.model import Frame, PixelFormat, SensorMeta
from agent.core.view import ViewRegion

UNAVAILABLE_HINT = (
    "install it with `sudo apt install python3-picamera2` on Raspberry Pi OS (bookworm) and create the "
    "virtual environment with `python3 -m venv --system-site-packages`, or choose the opencv/synthetic backend"
)
MIN_WALL_NS = 10**17  # FrameWallClock below this (1973) is not nanoseconds since the epoch: ignore it


class Picamera2Config(BaseModel):
    """``[capture.picamera2]``: picamera2-only settings (main size/fps come from ``[capture]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera_num: int = Field(default=0, ge=0, le=7, description="libcamera camera index (Pi 5: 0 or 1)")
    lores_width: int = Field(default=320, ge=64, le=1920,
                             description="lores stream width for analytics and live view (even)")
    lores_height: int = Field(default=240, ge=48, le=1080, description="lores stream height (even)")
    encoder: Literal["auto", "libav"] = Field(
        default="auto", description="auto = picamera2 H264Encoder (bcm2835 hardware on Pi 4, libav on Pi 5); "
                                    "libav = always LibavH264Encoder (software)")
    buffer_count: int = Field(default=6, ge=2, le=16, description="camera buffers; stills hold one briefly")
    document_stills: bool = Field(
        default=False, description="full-resolution document stills while recording: main = the full sensor "
        "(sensor_resolution, YUV420), H.264 encodes lores at [capture] width/height (picamera2's "
        "still_during_video pattern); analytics and live view get lores. The full-sensor mode limits the frame "
        "rate (IMX708: 14.35 fps) and each buffer holds a full frame (18 MB at 4608x2592)")


def import_picamera2() -> Any:
    """The picamera2 module, or CaptureError saying how to get it."""
    try:
        return importlib.import_module("picamera2")
    except ImportError as exc:
        raise CaptureError(f"picamera2 is not available on this machine ({exc}); {UNAVAILABLE_HINT}") from None


def open_camera(module: Any, camera_num: int) -> Any:
    """``Picamera2(camera_num)`` after checking libcamera sees that camera."""
    cameras = module.Picamera2.global_camera_info()
    if not cameras or camera_num >= len(cameras):
        raise CaptureError(
            f"no camera {camera_num} found by libcamera ({len(cameras or [])} detected); "
            "check the ribbon cable and camera_auto_detect=1 in config.txt"
        )
    return module.Picamera2(camera_num)


def frame_times(metadata: dict[str, Any], wall_now: int, mono_now: int) -> tuple[int, int]:
    """(mono_ns, wall_ns) of a frame from libcamera's metadata.

    ``SensorTimestamp`` is CLOCK_MONOTONIC (ns) at the end of exposure, the clock of
    ``time.monotonic_ns``; ``FrameWallClock`` (libcamera >= 0.5) is the matching wall time in ns.
    Without it the wall time is derived from the frame's monotonic age; implausible values (a sensor
    time in the future, a wall clock that is not epoch ns or is ahead of now) are not trusted.
    """
    sensor_ns = metadata.get("SensorTimestamp")
    if not (isinstance(sensor_ns, int) and 0 < sensor_ns <= mono_now):
        return mono_now, wall_now
    wall_clock = metadata.get("FrameWallClock")
    if isinstance(wall_clock, int) and MIN_WALL_NS <= wall_clock <= wall_now + 1_000_000_000:
        return sensor_ns, wall_clock
    return sensor_ns, wall_now - (mono_now - sensor_ns)


def sensor_meta(metadata: dict[str, Any]) -> SensorMeta:
    """The exposure's own counters from libcamera's metadata (absent or non-integer values are None)."""

    def whole(key: str) -> int | None:
        value = metadata.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    return SensorMeta(whole("SensorTimestamp"), whole("SensorSequence"), whole("FrameDuration"),
                      scaler_crop=_rect(metadata.get("ScalerCrop")))


Rect = tuple[int, int, int, int]


def _rect(value: Any) -> Rect | None:
    """An ``(x, y, w, h)`` rectangle of non-negative integers with a positive size, else None."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return None
    x, y, w, h = value
    return (x, y, w, h) if w > 0 and h > 0 else None


def crop_limits(cam: Any) -> tuple[tuple[int, int], Rect, Rect]:
    """(smallest crop size, ScalerCrop maximum, default crop) in sensor pixels.

    libcamera's Raspberry Pi pipeline reports ``camera_controls["ScalerCrop"]`` as (min, max, default): min
    carries the smallest size the ISP scales from, max the sensor mode's crop (also the ``ScalerCropMaximum``
    property) and default the centred crop with the output's aspect, i.e. what the stream shows unzoomed.
    Without that control, the property or else ``PixelArraySize`` is the whole view.
    """
    info = (getattr(cam, "camera_controls", None) or {}).get("ScalerCrop")
    props = getattr(cam, "camera_properties", None) or {}
    size = props.get("PixelArraySize")
    whole = (0, 0, int(size[0]), int(size[1])) if isinstance(size, list | tuple) and len(size) == 2 else None
    maximum = _rect(props.get("ScalerCropMaximum")) or whole
    low = default = None
    if isinstance(info, list | tuple) and len(info) == 3:
        low, maximum, default = _rect(info[0]), _rect(info[1]) or maximum, _rect(info[2])
    if maximum is None:
        raise CaptureError("picamera2 reports neither ScalerCrop limits nor a ScalerCropMaximum/PixelArraySize")
    return ((low[2], low[3]) if low else (1, 1)), maximum, default or maximum


def scaler_crop(region: ViewRegion, cam: Any) -> Rect:
    """The ScalerCrop for ``region`` of the default crop, kept within the camera's limits the way libcamera does
    (at least the smallest size at the same aspect, same centre where possible, inside the maximum)."""
    (min_w, min_h), (mx, my, mw, mh), (dx, dy, dw, dh) = crop_limits(cam)
    x, y, w, h = region.pixels(dw, dh, left=dx, top=dy)
    scale = max(min_w / w, min_h / h, 1.0)
    if scale > 1.0:
        cx, cy = x + w / 2, y + h / 2
        w, h = min(mw, round(w * scale / 2) * 2), min(mh, round(h * scale / 2) * 2)
        x, y = round(cx - w / 2), round(cy - h / 2)
    x, y = max(mx, min(x, mx + mw - w)), max(my, min(y, my + mh - h))
    return x, y, w, h


def view_of(crop: Rect | None, area: Rect) -> ViewRegion | None:
    """The part of ``area`` (the default crop) a frame with ScalerCrop ``crop`` shows; None when all of it."""
    if crop is None:
        return None
    shown = ViewRegion.of_pixels(crop, area)
    return None if shown.full else shown


def request_times(metadata: dict[str, Any], clock: Clock) -> tuple[int, int]:
    """(mono_ns, wall_ns) of a request, reading the injected clock once for "now"."""
    return frame_times(metadata, clock.wall_ns(), clock.mono_ns())


def to_bgr(array: npt.NDArray[np.uint8], fmt: str | None) -> npt.NDArray[np.uint8]:
    """picamera2 array -> BGR uint8 (OpenCV layout).

    ``RGB888``/``XRGB8888`` are B,G,R(,X) in memory; ``BGR888``/``XBGR8888`` are R,G,B(,X);
    ``YUV420`` arrives as an (h*3/2, w) I420 plane stack.
    """
    image, pix = frame_pixels(array, fmt)
    if pix == "yuv420p":
        from agent.capture.pixels import bgr

        return bgr(Frame(image=image, index=0, wall_ns=0, mono_ns=0, fmt="yuv420p"))
    return image


def frame_pixels(array: npt.NDArray[np.uint8], fmt: str | None) -> tuple[npt.NDArray[np.uint8], PixelFormat]:
    """picamera2 array -> (pixels, Frame.fmt): ``YUV420`` stays I420 (no conversion), RGB formats become BGR."""
    if fmt == "YUV420" or array.ndim == 2:
        return np.ascontiguousarray(array), "yuv420p"
    if fmt in ("BGR888", "XBGR8888"):
        return np.ascontiguousarray(array[:, :, 2::-1]), "bgr24"
    return (array[:, :, :3] if array.shape[2] == 4 else array), "bgr24"


def request_frame(request: Any, stream: str, fmt: str | None, index: int, clock: Clock) -> Frame:
    """Copy one stream of a CompletedRequest into a Frame and release the request at once."""
    try:
        image = request.make_array(stream)
        metadata = request.get_metadata()
    finally:
        request.release()  # hold requests briefly or libcamera runs out of buffers and drops frames
    mono, wall = request_times(metadata, clock)
    pixels, pix = frame_pixels(image, fmt)
    return Frame(image=pixels, index=index, wall_ns=wall, mono_ns=mono, sensor=sensor_meta(metadata), fmt=pix)


def jpeg(frame: Frame, quality: int) -> bytes:
    from agent.capture.pixels import encode_jpeg

    return encode_jpeg(frame, quality)


class Picamera2Backend(CaptureBackend):
    """Frames from the main (or lores) stream; full-resolution stills from main while frames flow."""

    name: ClassVar[str] = "picamera2"
    capabilities: ClassVar[frozenset[str]] = frozenset({"sensor_timestamps", "still", "h264"})

    def __init__(self, settings: CaptureSettings, clock: Clock, camera_num: int = 0,
                 stream: Literal["main", "lores"] = "main", lores_size: tuple[int, int] = (320, 240),
                 main_format: str = "RGB888") -> None:
        super().__init__(settings, clock)
        self.camera_num = camera_num
        self.stream = stream
        self.lores_size = lores_size
        self.main_format = main_format
        self._cam: Any = None
        self._index = 0
        self._still_no = 0

    def describe(self) -> str:
        s = self.settings
        extra = f" lores {self.lores_size[0]}x{self.lores_size[1]}" if self.stream == "lores" else ""
        return f"picamera2 camera {self.camera_num} {s.width}x{s.height}@{s.fps:g}{extra}"

    def _format(self, stream: str) -> str | None:
        if self._cam is None or not isinstance(getattr(self._cam, "camera_config", None), dict):
            return self.main_format if stream == "main" else "YUV420"
        return (self._cam.camera_config.get(stream) or {}).get("format")

    def _open(self) -> None:
        module = import_picamera2()
        cam = open_camera(module, self.camera_num)
        s = self.settings
        kwargs: dict[str, Any] = {"main": {"size": (s.width, s.height), "format": self.main_format},
                                  "controls": {"FrameRate": float(s.fps)}}
        if self.stream == "lores":  # YUV420: the only lores format the Pi 4 ISP offers
            kwargs["lores"] = {"size": self.lores_size, "format": "YUV420"}
        try:
            cam.configure(cam.create_video_configuration(**kwargs))
            cam.start()
        except Exception as exc:
            cam.close()
            raise CaptureError(f"picamera2 camera {self.camera_num} could not start: {exc}") from exc
        self._cam = cam
        self._index = 0

    def _close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None

    def _request(self) -> Any:
        try:
            return self._cam.capture_request()
        except Exception as exc:
            raise CaptureError(f"picamera2 camera {self.camera_num} stopped delivering frames: {exc}") from exc

    def _read(self) -> Frame:
        assert self._cam is not None
        frame = request_frame(self._request(), self.stream, self._format(self.stream), self._index, self.clock)
        self._index += 1
        return frame

    def zoom_area(self) -> Rect | None:
        """The default crop (what the stream shows unzoomed) in sensor pixels, once the camera runs."""
        return None if self._cam is None else crop_limits(self._cam)[2]

    def set_view(self, region: ViewRegion) -> Rect:
        """``ScalerCrop`` on every stream; libcamera applies it a few frames later (each frame's metadata says)."""
        cam = self._cam
        if cam is None:
            raise CaptureError(f"{self.name} capture is {self._state}, not open")
        crop = scaler_crop(region, cam)
        cam.set_controls({"ScalerCrop": crop})
        return crop

    def capture_still(self, quality: int = 90) -> bytes:
        """JPEG of the main stream at its configured (full) size, from the next request."""
        with self._lock:
            if self._cam is None:
                raise CaptureError(f"{self.name} capture is {self._state}, not open")
            frame = request_frame(self._request(), "main", self._format("main"), self._still_no, self.clock)
            self._still_no += 1
        return jpeg(frame, quality)

    def sensor_size(self) -> tuple[int, int] | None:
        cam = self._cam
        return None if cam is None else (int(cam.sensor_resolution[0]), int(cam.sensor_resolution[1]))

    def full_frame(self, latest: Frame | None) -> Frame | None:
        """``latest`` when main already is the full sensor; otherwise the full sensor is not available here."""
        size = self.sensor_size()
        if latest is not None and size is not None and (latest.width, latest.height) == size:
            return latest
        raise CaptureError("picamera2 streams main at [capture] width/height here; full-resolution stills need "
                           "video on with [capture.picamera2] document_stills = true")


def full_sensor_fps(cam: Any, size: tuple[int, int]) -> float | None:
    """The highest frame rate of the camera's sensor modes that cover ``size`` (None when it lists none).

    libcamera picks the sensor mode from the largest stream: a main stream at the full sensor needs the
    full-readout mode, whose rate (IMX708: 14.35 fps) caps the whole configuration, video included.
    """
    modes = [m for m in (getattr(cam, "sensor_modes", None) or []) if isinstance(m, dict)]
    rates = [float(m["fps"]) for m in modes if isinstance(m.get("size"), tuple | list) and len(m["size"]) == 2
             and m["size"][0] >= size[0] and m["size"][1] >= size[1] and isinstance(m.get("fps"), int | float)]
    return max(rates) if rates else None

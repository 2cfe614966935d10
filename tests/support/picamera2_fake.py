"""A fake ``picamera2`` package for tests off a Raspberry Pi.

Mirrors the API surface of picamera2 0.3.x as shipped in Raspberry Pi OS bookworm (python3-picamera2
0.3.2x, a release recent enough to have ``outputs.SplittableOutput``; its first release number was not
confirmed). Encoder, LibavH264Encoder, the encoders package's H264Encoder alias, PyavOutput and
SplittableOutput were copied in behaviour from raspberrypi/picamera2's own source; the Picamera2 and
CompletedRequest methods follow the picamera2 manual's signatures (not re-read line by line).

* ``sensor_resolution`` (4608, 2592), ``sensor_modes`` (the IMX708's three; the mode covering the largest stream
  caps the frame rate), ``camera_properties["PixelArraySize"]``; lores larger than main or not YUV is refused.
* ``Picamera2(camera_num)``, ``global_camera_info()``, ``create_video_configuration(main=, lores=,
  controls=, encode=, buffer_count=)``, ``configure``, ``start``/``stop``/``close``,
  ``capture_request(wait=, flush=)``, ``start_encoder``/``stop_encoder``, ``start_recording``/
  ``stop_recording``, ``pre_callback``/``post_callback`` (called on the camera thread, around the
  encoders, as picamera2 does).
* digital zoom as libcamera's Raspberry Pi pipeline does it: ``camera_controls["ScalerCrop"]`` = (min, max,
  default) and the ``ScalerCropMaximum``/``PixelArraySize`` properties (IMX708, 4608x2592; default = the centred
  crop with the main stream's aspect), ``set_controls({"ScalerCrop": (x, y, w, h)})`` kept within the limits and
  applied ``CONTROL_DELAY_FRAMES`` later to every stream, each request's metadata reporting the crop it used, and
  the streams drawing that part of the sensor's picture.
* ``CompletedRequest``: ``make_array(name)``, ``get_metadata()`` (``SensorTimestamp`` ns on
  CLOCK_MONOTONIC, ``FrameWallClock`` ns since the epoch, ``ExposureTime``, ``FrameDuration``, ``ScalerCrop``),
  ``save(name, file_output, format=)``, ``acquire()``/``release()`` (reference counted).
* ``encoders``: ``Encoder`` (timestamps = µs since the first frame, like ``Encoder._timestamp``),
  ``LibavH264Encoder`` (real libx264 through PyAV, as in picamera2) and ``H264Encoder`` aliased to it,
  because this machine has no ``/dev/video11`` bcm2835 codec (``_hw_encoder_available = False``).
* ``outputs``: ``Output``, ``PyavOutput(output_name, format=None)`` and ``SplittableOutput`` with
  picamera2's own logic, so the files written are REAL H.264 MP4 that ffprobe can check.

Frames are numpy test patterns generated on a named thread at the configured ``FrameRate``.
Install only inside tests: :func:`install` puts the modules into ``sys.modules`` via monkeypatch.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import types
from fractions import Fraction
from typing import Any, ClassVar

import av
import cv2
import numpy as np
import pytest

VERSION = "0.3.25 (fake)"

# -- outputs -----------------------------------------------------------------------------------------


class Output:
    """picamera2.outputs.Output: ``recording`` flag, start/stop, outputframe."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False
        self.needs_pacing = False
        self.ptsoutput = pts

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        pass

    def outputtimestamp(self, timestamp: int | None = None) -> None:
        pass

    def _add_stream(self, encoder_stream: Any, codec_name: str, **kwargs: Any) -> None:
        pass


class PyavOutput(Output):
    """picamera2.outputs.PyavOutput: muxes the encoder's packets in-process with their own timestamps."""

    def __init__(self, output_name: str, format: str | None = None, pts: Any = None) -> None:
        super().__init__(pts=pts)
        self._output_name = output_name
        self._format = format
        self._streams: dict[Any, Any] = {}
        self._container: Any = None
        self.error_callback: Any = None

    def _add_stream(self, encoder_stream: Any, codec_name: str, **kwargs: Any) -> None:
        stream = self._container.add_stream(codec_name, **kwargs)
        stream.codec_context.width = encoder_stream.codec_context.width
        stream.codec_context.height = encoder_stream.codec_context.height
        stream.codec_context.pix_fmt = encoder_stream.codec_context.pix_fmt
        self._streams[encoder_stream] = stream

    def start(self) -> None:
        self._container = av.open(self._output_name, "w", format=self._format)
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._container:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
            self._streams = {}

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        if self.recording and self._container:
            orig_stream = None
            if not packet:
                packet = av.Packet(frame)
                packet.dts = timestamp
                packet.pts = timestamp
                packet.time_base = Fraction(1, 1000000)
                packet.stream = self._streams["video"]
            else:
                orig_stream = packet.stream
                if orig_stream not in self._streams:
                    raise RuntimeError("Stream not found in PyavOutput")
                packet.stream = self._streams[orig_stream]
            try:
                self._container.mux(packet)
            except Exception as e:
                with contextlib.suppress(Exception):
                    self._container.close()
                self._container = None
                if self.error_callback:
                    self.error_callback(e)
            packet.stream = orig_stream
            self.outputtimestamp(timestamp)


class SplittableOutput(Output):
    """picamera2.outputs.SplittableOutput: switch to a new output at a keyframe without dropping frames."""

    def __init__(self, output: Output | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._output = output
        self._new_output: Output | None = None
        self._split_done = threading.Event()
        self._streams: list[tuple[Any, str, dict[str, Any]]] = []
        self._wait_for_keyframe = True
        self.needs_add_stream = True

    def split_output(self, new_output: Output, wait_for_keyframe: bool = True) -> None:
        old_output = self._output
        new_output.start()
        for encoder_stream, codec, kwargs in self._streams:
            new_output._add_stream(encoder_stream, codec, **kwargs)
        self._wait_for_keyframe = wait_for_keyframe
        self._new_output = new_output
        self._split_done.wait()
        self._split_done.clear()
        if old_output:
            old_output.stop()

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        if self._new_output and (not self._wait_for_keyframe or (not audio and keyframe)):
            self._split_done.set()
            self._output = self._new_output
            self._new_output = None
        if self._output:
            self._output.outputframe(frame, keyframe, timestamp, packet, audio)

    def start(self) -> None:
        super().start()
        if self._output:
            self._output.start()

    def stop(self) -> None:
        super().stop()
        if self._output:
            self._output.stop()

    def _add_stream(self, encoder_stream: Any, codec_name: str, **kwargs: Any) -> None:
        self._streams.append((encoder_stream, codec_name, kwargs))
        if self._output:
            self._output._add_stream(encoder_stream, codec_name, **kwargs)


# -- encoders ----------------------------------------------------------------------------------------


class Encoder:
    """picamera2.encoders.Encoder: outputs, running flag, timestamps in µs since the first frame."""

    def __init__(self) -> None:
        self.width = 0
        self.height = 0
        self.format: str | None = None
        self._output: list[Output] = []
        self._running = False
        self.name: str | None = None
        self._lock = threading.Lock()
        self.firsttimestamp: int | None = None

    @property
    def running(self) -> bool:
        return self._running

    @property
    def output(self) -> Any:
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value: Any) -> None:
        self._output = value if isinstance(value, list) else [value]

    def encode(self, stream: str, request: CompletedRequest) -> None:
        with self._lock:
            self._encode(stream, request)

    def _encode(self, stream: str, request: CompletedRequest) -> None:
        raise NotImplementedError

    def start(self, quality: Any = None) -> None:
        with self._lock:
            if self._running:
                raise RuntimeError("Encoder already running")
            self._running = True
            for out in self._output:
                out.start()
            self._start()

    def _start(self) -> None:
        pass

    def stop(self) -> None:
        with self._lock:
            if not self._running:
                raise RuntimeError("Encoder already stopped")
            self._running = False
            self._stop()
            for out in self._output:
                out.stop()

    def _stop(self) -> None:
        pass

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None) -> None:
        for out in self._output:
            out.outputframe(frame, keyframe, timestamp, packet)

    def _timestamp(self, request: CompletedRequest) -> int:
        ts = int(request.get_metadata()["SensorTimestamp"] / 1000)  # ns to us
        if self.firsttimestamp is None:
            self.firsttimestamp = ts
            return 0
        return ts - self.firsttimestamp


class LibavH264Encoder(Encoder):
    """picamera2.encoders.LibavH264Encoder: libx264 via PyAV, packets handed to the outputs."""

    def __init__(self, bitrate: int | None = None, repeat: bool = True, iperiod: int = 30,
                 framerate: float = 30, qp: int | None = None, profile: str | None = None) -> None:
        super().__init__()
        self._codec = "h264"
        self.repeat, self.bitrate, self.iperiod, self.framerate = repeat, bitrate, iperiod, framerate
        self.qp, self.profile, self.preset = qp, profile, None
        self.threads = 1
        self._stream: Any = None
        self._container: Any = None

    def _start(self) -> None:
        self._container = av.open("/dev/null", "w", format="null")
        self._stream = self._container.add_stream(self._codec, rate=Fraction(self.framerate).limit_denominator(1001))
        self._stream.codec_context.thread_count = self.threads
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        for out in self._output:
            out._add_stream(self._stream, self._codec, rate=self.framerate, width=self.width, height=self.height)
        if self.bitrate is not None:
            self._stream.codec_context.bit_rate = self.bitrate
        self._stream.codec_context.gop_size = self.iperiod or (1 << 31) - 1
        self._stream.codec_context.options = {"preset": self.preset or "ultrafast", "tune": "zerolatency"}
        self._stream.codec_context.time_base = Fraction(1, 1000000)

    def _stop(self) -> None:
        for packet in self._stream.encode():
            self.outputframe(bytes(packet), packet.is_keyframe, timestamp=packet.pts, packet=packet)
        self._container.close()

    def _encode(self, stream: str, request: CompletedRequest) -> None:
        timestamp_us = self._timestamp(request)
        arr = request.make_array(stream)
        if self.format == "YUV420":
            frame = av.VideoFrame.from_ndarray(arr, format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(_to_bgr(arr, self.format or "RGB888")),
                                               format="bgr24")
        frame.pts = timestamp_us
        for packet in self._stream.encode(frame):
            self.outputframe(bytes(packet), packet.is_keyframe, timestamp=packet.pts, packet=packet)


H264Encoder = LibavH264Encoder  # picamera2.encoders does this when /dev/video11 is not the bcm2835 codec

# -- requests and the camera -------------------------------------------------------------------------


def _to_bgr(arr: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "YUV420":
        return np.asarray(cv2.cvtColor(arr, cv2.COLOR_YUV2BGR_I420))
    if fmt in ("RGB888", "XRGB8888"):
        return arr[:, :, :3]
    return arr[:, :, 2::-1]  # BGR888 / XBGR8888 are R,G,B in memory


def _pattern(n: int, size: tuple[int, int], fmt: str,
             view: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """A moving gradient with a frame-number bar, in the stream's pixel layout. ``view`` (the ScalerCrop as
    fractions of the sensor, x, y, w, h) draws that part of the full-view gradient scaled to the stream, as the
    ISP does: the gradient's slope grows with the zoom and its offset follows the pan."""
    w, h = size
    fx, fy, fw, fh = view or (0.0, 0.0, 1.0, 1.0)
    cols = ((fx * w + (np.arange(w) + 0.5) * fw) - 0.5).round().astype(np.int32)
    rows = ((fy * h + (np.arange(h) + 0.5) * fh) - 0.5).round().astype(np.int32)
    x = (cols[None, :] + 3 * n) % 256
    y = rows[:, None] * 255 // max(1, h - 1)
    bgr = np.empty((h, w, 3), np.uint8)
    bgr[:, :, 0] = x
    bgr[:, :, 1] = y
    bgr[:, :, 2] = (x + y + n) % 256
    bgr[: max(1, h // 8), : (n % max(1, w)) + 1] = 255
    if fmt == "YUV420":
        return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420))
    if fmt == "RGB888":
        return bgr
    if fmt == "BGR888":
        return np.ascontiguousarray(bgr[:, :, ::-1])
    alpha = np.full((h, w, 1), 255, np.uint8)
    return np.concatenate([bgr if fmt == "XRGB8888" else bgr[:, :, ::-1], alpha], axis=2)


#: ``Picamera2.sensor_modes`` of a Camera Module 3 (IMX708) as picamera2 lists them (format shown as text):
#: libcamera picks the mode from the largest stream, and the full-sensor mode caps the frame rate at 14.35 fps.
IMX708_MODES: list[dict[str, Any]] = [
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (1536, 864), "fps": 120.13,
     "crop_limits": (768, 432, 3072, 1728), "exposure_limits": (9, 77208384, None)},
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (2304, 1296), "fps": 56.03,
     "crop_limits": (0, 0, 4608, 2592), "exposure_limits": (13, 112015443, None)},
    {"format": "SRGGB10_CSI2P", "unpacked": "SRGGB10", "bit_depth": 10, "size": (4608, 2592), "fps": 14.35,
     "crop_limits": (0, 0, 4608, 2592), "exposure_limits": (26, 220417486, None)},
]


def _mode_for(size: tuple[int, int]) -> dict[str, Any]:
    """The sensor mode libcamera would pick for the largest stream: the fastest that covers it."""
    fits = [m for m in IMX708_MODES if m["size"][0] >= size[0] and m["size"][1] >= size[1]]
    return max(fits, key=lambda m: m["fps"]) if fits else IMX708_MODES[-1]


class CompletedRequest:
    """picamera2.request.CompletedRequest: arrays and metadata of one frame, reference counted.

    A stream's pixels are generated the first time something asks for them (a full-sensor main stream is
    18 MB a frame): what the application sees is the same, the fake just does not draw unread frames."""

    def __init__(self, picam2: Picamera2, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
        self.picam2 = picam2
        self.config = picam2.camera_config
        self._arrays = arrays
        self._metadata = metadata
        self.ref_count = 1
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            if self.ref_count == 0:
                raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
            self.ref_count += 1

    def release(self) -> None:
        with self._lock:
            self.ref_count -= 1
            if self.ref_count < 0:
                raise RuntimeError("CompletedRequest: lock now has negative ref_count")
            done = self.ref_count == 0
        if done:
            self.picam2._request_done(self)

    def get_metadata(self) -> dict[str, Any]:
        return dict(self._metadata)

    def make_array(self, name: str) -> np.ndarray:
        if self.ref_count == 0:
            raise RuntimeError("request used after release()")
        with self._lock:
            array = self._arrays[name]
            if callable(array):
                array = self._arrays[name] = array()
        return array.copy()

    def save(self, name: str, file_output: Any, format: str | None = None,
             exif_data: Any = None) -> None:
        assert self.config is not None
        ok, buf = cv2.imencode(".jpg", _to_bgr(self.make_array(name), self.config[name]["format"]),
                               [cv2.IMWRITE_JPEG_QUALITY, int(self.picam2.options.get("quality", 90))])
        assert ok
        if isinstance(file_output, (str, bytes)) or hasattr(file_output, "__fspath__"):
            with open(file_output, "wb") as fh:
                fh.write(buf.tobytes())
        else:
            file_output.write(buf.tobytes())


class Picamera2:
    """picamera2.Picamera2 with a generated sensor; class attributes let tests shape the camera."""

    cameras: ClassVar[list[dict[str, Any]]] = [
        {"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a",
         "Num": 0}]
    frame_wall_clock: ClassVar[bool] = True  # libcamera >= 0.5 reports FrameWallClock
    exposure_ns: ClassVar[int] = 2_000_000
    instances: ClassVar[list[Picamera2]] = []

    def __init__(self, camera_num: int = 0, tuning: Any = None) -> None:
        if camera_num >= len(self.cameras):
            raise IndexError("list index out of range")
        self.camera_num = camera_num
        self.camera_properties = {"Model": self.cameras[camera_num]["Model"], "PixelArraySize": (4608, 2592),
                                  "ScalerCropMaximum": (0, 0, 4608, 2592)}
        self.sensor_resolution = (4608, 2592)
        # digital zoom (libcamera's Raspberry Pi pipeline): ScalerCrop limits as camera_controls reports them
        self.crop = self.crop_default = (0, 0, 4608, 2592)
        self.crop_requests: list[tuple[int, int, int, int]] = []  # what set_controls was asked, in order
        self._crop_pending: list[tuple[int, tuple[int, int, int, int]]] = []  # (from sequence, crop)
        self.sensor_modes = [dict(m) for m in IMX708_MODES]
        self.camera_config: dict[str, Any] | None = None
        self.options: dict[str, Any] = {"quality": 90}
        self.pre_callback: Any = None
        self.post_callback: Any = None
        self.started = False
        self.closed = False
        self._encoders: set[Encoder] = set()
        self._waiters: list[tuple[threading.Event, list[CompletedRequest]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sequence = 0
        self.outstanding = 0  # requests not yet released by everyone
        self.dropped = 0  # frames skipped because the application held every buffer
        Picamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return list(Picamera2.cameras)

    def create_video_configuration(self, main: dict[str, Any] | None = None, lores: dict[str, Any] | None = None,
                                   raw: dict[str, Any] | None = None, transform: Any = None,
                                   colour_space: Any = None, buffer_count: int = 6,
                                   controls: dict[str, Any] | None = None, display: str | None = "main",
                                   encode: str | None = "main", queue: bool = True,
                                   sensor: dict[str, Any] | None = None) -> dict[str, Any]:
        m = {"format": "XBGR8888", "size": (1280, 720), **(main or {})}
        lo = None if lores is None else {"format": "YUV420", "size": (320, 240), **lores}
        return {"use_case": "video", "buffer_count": buffer_count, "main": m, "lores": lo, "raw": raw,
                "controls": {"FrameDurationLimits": (33333, 33333), **(controls or {})},
                "display": display, "encode": encode, "queue": queue}

    def configure(self, camera_config: dict[str, Any]) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        lores = camera_config.get("lores")
        if lores is not None:  # picamera2's own checks (Picamera2.check_camera_config)
            (mw, mh), (lw, lh) = camera_config["main"]["size"], lores["size"]
            if lw > mw or lh > mh:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if lores["format"] not in ("YUV420", "YVU420", "NV12", "NV21"):
                raise RuntimeError("lores stream must be YUV")
        self.camera_config = camera_config
        # the default crop: the largest centred rectangle of the sensor with the main stream's aspect
        sw, sh = self.sensor_resolution
        mw, mh = camera_config["main"]["size"]
        w, h = (sw, sw * mh // mw // 2 * 2) if sw * mh <= sh * mw else (sh * mw // mh // 2 * 2, sh)
        self.crop = self.crop_default = ((sw - w) // 2, (sh - h) // 2, w, h)

    # Sensor pixels of the smallest ScalerCrop: libcamera scales the ISP's minimum crop to native pixels (the value
    # here is a plausible stand-in, not read from a Pi). Zoom controls take effect this many frames later.
    CROP_MIN: ClassVar[tuple[int, int, int, int]] = (0, 0, 128, 128)
    CONTROL_DELAY_FRAMES: ClassVar[int] = 2

    @property
    def camera_controls(self) -> dict[str, tuple[Any, Any, Any]]:
        """``{name: (min, max, default)}``, as picamera2 reports libcamera's ControlInfoMap (ScalerCrop only)."""
        return {"ScalerCrop": (self.CROP_MIN, self.camera_properties["ScalerCropMaximum"], self.crop_default)}

    def set_controls(self, controls: dict[str, Any]) -> None:
        """Queue controls for a later frame. ScalerCrop is adjusted as libcamera's RPi pipeline does: at least the
        minimum size (enlarged to the crop's aspect), the same centre where possible, inside the maximum."""
        unknown = set(controls) - {"ScalerCrop", "FrameRate"}
        if unknown:
            raise RuntimeError(f"Control {sorted(unknown)[0]} is not advertised by libcamera")
        if "ScalerCrop" not in controls:
            return
        x, y, w, h = (int(v) for v in controls["ScalerCrop"])
        if not w or not h:
            x, y, w, h = 0, 0, 1, 1
        mx, my, mw, mh = self.camera_properties["ScalerCropMaximum"]
        lw, lh = self.CROP_MIN[2:]
        grow = max(lw / w, lh / h, 1.0)
        cx, cy = x + w / 2, y + h / 2
        w, h = min(mw, round(w * grow)), min(mh, round(h * grow))
        x, y = max(mx, min(round(cx - w / 2), mx + mw - w)), max(my, min(round(cy - h / 2), my + mh - h))
        with self._lock:
            self.crop_requests.append((x, y, w, h))
            self._crop_pending.append((self.sequence + self.CONTROL_DELAY_FRAMES, (x, y, w, h)))

    def _crop_view(self) -> tuple[float, float, float, float] | None:
        """The current crop as fractions of the sensor (None when it is the whole sensor)."""
        sw, sh = self.sensor_resolution
        x, y, w, h = self.crop
        return None if (x, y, w, h) == (0, 0, sw, sh) else (x / sw, y / sh, w / sw, h / sh)

    def start(self, config: dict[str, Any] | None = None, show_preview: bool = False) -> None:
        if config is not None:
            self.configure(config)
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if self.started:
            return
        self.started = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fake-picamera2", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self.started:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.started = False

    def close(self) -> None:
        self.stop()
        self.closed = True

    def start_encoder(self, encoder: Encoder | None = None, output: Any = None, pts: Any = None,
                      quality: Any = None, name: str | None = None) -> None:
        assert encoder is not None and self.camera_config is not None
        if output is not None:
            encoder.output = output
        name = name or self.camera_config["encode"] or "main"
        stream = self.camera_config[name]
        encoder.width, encoder.height = stream["size"]
        encoder.format = stream["format"]
        encoder.name = name
        encoder.start(quality)
        with self._lock:
            self._encoders.add(encoder)

    def stop_encoder(self, encoders: Any = None) -> None:
        with self._lock:
            todo = list(self._encoders) if encoders is None else list(encoders)
            for e in todo:
                self._encoders.discard(e)
        for e in todo:
            e.stop()

    def start_recording(self, encoder: Encoder, output: Any, pts: Any = None, config: Any = None,
                        quality: Any = None, name: str | None = None) -> None:
        if config is not None:
            self.configure(config)
        self.start_encoder(encoder, output, pts=pts, quality=quality, name=name)
        self.start()

    def stop_recording(self) -> None:
        self.stop()
        self.stop_encoder()

    def capture_request(self, wait: float | None = None, flush: Any = None) -> CompletedRequest:
        if not self.started:
            raise RuntimeError("Camera is not running")
        ev, box = threading.Event(), list[CompletedRequest]()
        with self._lock:
            self._waiters.append((ev, box))
        if not ev.wait(5 if wait is None else wait):
            raise TimeoutError("capture_request timed out")
        return box[0]

    def capture_array(self, name: str = "main") -> np.ndarray:
        request = self.capture_request()
        try:
            return request.make_array(name)
        finally:
            request.release()

    def _request_done(self, request: CompletedRequest) -> None:
        with self._lock:
            self.outstanding -= 1

    def _run(self) -> None:
        cfg = self.camera_config
        assert cfg is not None
        controls = cfg["controls"]
        period_ns = int(1e9 / controls["FrameRate"]) if "FrameRate" in controls else \
            int(controls["FrameDurationLimits"][0] * 1000)
        period_ns = max(period_ns, int(1e9 / _mode_for(cfg["main"]["size"])["fps"]))  # the sensor mode's limit
        next_ns = time.monotonic_ns()
        while not self._stop.wait(max(0.0, (next_ns - time.monotonic_ns()) / 1e9)):
            next_ns += period_ns
            if self.outstanding >= cfg["buffer_count"]:
                self.dropped += 1  # the application holds every buffer: libcamera has nowhere to write
                continue
            streams = {n: cfg[n] for n in ("main", "lores") if cfg.get(n)}
            with self._lock:
                while self._crop_pending and self._crop_pending[0][0] <= self.sequence:
                    self.crop = self._crop_pending.pop(0)[1]
            view = self._crop_view()
            arrays: dict[str, Any] = {n: functools.partial(_pattern, self.sequence, s["size"], s["format"], view)
                                      for n, s in streams.items()}
            metadata: dict[str, Any] = {"SensorTimestamp": time.monotonic_ns() - self.exposure_ns // 2,
                                        "ExposureTime": self.exposure_ns // 1000, "FrameDuration": period_ns // 1000,
                                        "ScalerCrop": self.crop}
            if self.frame_wall_clock:
                metadata["FrameWallClock"] = time.time_ns() - self.exposure_ns // 2
            request = CompletedRequest(self, arrays, metadata)
            with self._lock:
                self.outstanding += 1
                encoders = list(self._encoders)
                waiters, self._waiters = self._waiters, []
            self.sequence += 1
            if self.pre_callback:
                self.pre_callback(request)
            for encoder in encoders:
                if encoder.name in streams:
                    encoder.encode(encoder.name, request)
            if self.post_callback:
                self.post_callback(request)
            for ev, box in waiters:
                request.acquire()
                box.append(request)
                ev.set()
            request.release()


def install(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Put ``picamera2``, ``picamera2.encoders`` and ``picamera2.outputs`` into sys.modules (test only)."""
    pkg = types.ModuleType("picamera2")
    pkg.__path__ = []  # a package, so "from picamera2.encoders import ..." resolves
    pkg.__version__ = VERSION  # type: ignore[attr-defined]
    enc = types.ModuleType("picamera2.encoders")
    out = types.ModuleType("picamera2.outputs")
    members: dict[str, object] = {"Picamera2": Picamera2, "CompletedRequest": CompletedRequest}
    for name, obj in members.items():
        setattr(pkg, name, obj)
    for name, obj in {"Encoder": Encoder, "H264Encoder": H264Encoder, "LibavH264Encoder": LibavH264Encoder,
                      "_hw_encoder_available": False}.items():
        setattr(enc, name, obj)
    for name, obj in {"Output": Output, "PyavOutput": PyavOutput, "SplittableOutput": SplittableOutput}.items():
        setattr(out, name, obj)
    pkg.encoders, pkg.outputs = enc, out  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "picamera2", pkg)
    monkeypatch.setitem(__import__("sys").modules, "picamera2.encoders", enc)
    monkeypatch.setitem(__import__("sys").modules, "picamera2.outputs", out)
    Picamera2.instances = []
    return pkg


__all__ = ["CompletedRequest", "H264Encoder", "LibavH264Encoder", "Picamera2", "PyavOutput", "SplittableOutput",
           "install"]

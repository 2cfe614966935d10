"""Small frozen values that flow between the parts (source -> recorder -> sealer -> vault).

Every field here ends up, directly or not, in a signed record, so each one says what was
measured and nothing is guessed: no fix is ``GpsReading(fix=None, ...)``, never a stale position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the core imports no third-party package at run time
    import numpy as np
    import numpy.typing as npt

    from agent.core.view import ViewRegion

TimeSource = Literal["gps", "ntp", "unsynced"]
PixelFormat = Literal["yuv420p", "bgr24"]


@dataclass(frozen=True)
class SensorMeta:
    """What the camera itself reported about one exposure (picamera2/libcamera request metadata).

    ``sensor_ns`` is libcamera's SensorTimestamp, ``sequence`` its SensorSequence frame counter and
    ``frame_duration_us`` its FrameDuration; each is None when the camera did not report it.
    ``scaler_crop`` is the ScalerCrop libcamera says it applied to this frame (sensor pixels, x, y, w, h).
    """

    sensor_ns: int | None = None
    sequence: int | None = None
    frame_duration_us: int | None = None
    scaler_crop: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Frame:
    """One camera frame: uint8 pixels plus when it was captured (and the sensor's metadata, if any).

    ``fmt`` says how ``image`` holds the pixels: ``"yuv420p"`` (I420, BT.601 limited range, the cameras'
    and encoders' own format: a (height * 3 / 2, width) array, Y plane then U then V) or ``"bgr24"``
    ((height, width, 3)). Helpers in ``agent.capture.pixels`` read either. ``view`` is the part of the full
    view the frame shows when zoomed (``agent.core.view``); None is all of it.
    """

    image: npt.NDArray[np.uint8]
    index: int
    wall_ns: int
    mono_ns: int
    sensor: SensorMeta | None = None
    fmt: PixelFormat = "bgr24"
    view: ViewRegion | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0]) * 2 // 3 if self.fmt == "yuv420p" else int(self.image.shape[0])


@dataclass(frozen=True)
class GpsFix:
    """A position the receiver actually reported as valid (2D or 3D)."""

    lat: float
    lon: float
    mode: Literal[2, 3]
    fix_time: str  # receiver's UTC time of the fix, RFC 3339
    alt_m: float | None = None
    hdop: float | None = None
    satellites: int | None = None
    talker: str | None = None  # GP, GN, GL, BD, GB, GA, "gpsd", or "sim"

    def as_record(self) -> dict[str, Any]:
        return {
            "fix": f"{self.mode}d",
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "alt_m": None if self.alt_m is None else round(self.alt_m, 2),
            "hdop": self.hdop,
            "satellites": self.satellites,
            "fix_time": self.fix_time,
            "talker": self.talker,
        }


@dataclass(frozen=True)
class GpsReading:
    """What the GPS said at one moment: a fix, or why there is none."""

    fix: GpsFix | None
    status: str = "ok"  # "ok", "no fix", "no gps", "stale", "disabled"
    age_s: float | None = None  # how old the fix was when read

    def as_record(self) -> dict[str, Any]:
        if self.fix is None:
            return {"fix": "none", "status": self.status}
        rec = self.fix.as_record()
        rec["age_s"] = None if self.age_s is None else round(self.age_s, 3)
        return rec


NO_GPS = GpsReading(fix=None, status="no gps")


@dataclass(frozen=True)
class TimeQuality:
    """Where the wall clock's time came from, and how far GPS time was from it."""

    source: TimeSource
    synced: bool
    est_error_s: float | None = None  # kernel/chrony estimated error
    gps_offset_s: float | None = None  # GPS time minus system time, when both exist

    def as_record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "synced": self.synced,
            "est_error_s": self.est_error_s,
            "gps_offset_s": None if self.gps_offset_s is None else round(self.gps_offset_s, 6),
        }


@dataclass(frozen=True)
class Moment:
    """A capture instant with everything the sealer records about it."""

    wall_ns: int
    mono_ns: int
    gps: GpsReading
    time: TimeQuality


@dataclass(frozen=True)
class SealedItem:
    """The result of sealing: where the evidence landed and its record hash."""

    seq: int
    kind: str
    record_hash: str
    record: dict[str, Any] = field(repr=False)
    record_path: str
    media_path: str | None

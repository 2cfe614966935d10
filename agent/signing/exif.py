"""EXIF for evidence stills, written before sealing so the record's SHA-256 (and C2PA's hash) cover it.

Photo apps, exiftool and PIL read capture time, place and camera from EXIF, not from our sidecar
record. Everything here comes from the same :class:`~agent.core.model.Moment` as the record:
DateTimeOriginal + SubSecTimeOriginal + OffsetTimeOriginal is the record's ``captured.wall`` (UTC,
microseconds), the GPS IFD is the record's fix -- and there is no GPS IFD at all without a fix
(never a stale or default position). Make/Model/BodySerialNumber name the device.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import piexif

import agent
from agent.core.errors import SigningError
from agent.core.model import GpsFix, Moment

MAKE = "evidence-agent"


@dataclass(frozen=True)
class DeviceTags:
    """Who took the still: the device id (serial), its site and the camera behind it."""

    device_id: str
    site_id: str
    camera: str = ""


def _ascii(text: str) -> bytes:
    return text.encode("ascii", "replace")


def _rational(value: float, denominator: int) -> tuple[int, int]:
    frac = Fraction(round(value * denominator), denominator)
    return frac.numerator, frac.denominator


def _dms(value: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Degrees, minutes, seconds as EXIF rationals (seconds to 1/10000 s of arc, about 3 mm)."""
    value = abs(value)
    deg = int(value)
    minutes_f = (value - deg) * 60
    minutes = int(minutes_f)
    seconds = round((minutes_f - minutes) * 60 * 10000)
    return (deg, 1), (minutes, 1), (seconds, 10000)


def _gps_ifd(fix: GpsFix) -> dict[int, Any]:
    g = piexif.GPSIFD
    out: dict[int, Any] = {
        g.GPSVersionID: (2, 3, 0, 0),
        g.GPSLatitudeRef: b"N" if fix.lat >= 0 else b"S",
        g.GPSLatitude: _dms(fix.lat),
        g.GPSLongitudeRef: b"E" if fix.lon >= 0 else b"W",
        g.GPSLongitude: _dms(fix.lon),
        g.GPSMeasureMode: _ascii(str(fix.mode)),
        g.GPSStatus: b"A",
        g.GPSMapDatum: b"WGS-84",
    }
    if fix.alt_m is not None:
        out[g.GPSAltitudeRef] = 0 if fix.alt_m >= 0 else 1
        out[g.GPSAltitude] = _rational(abs(fix.alt_m), 100)
    if fix.hdop is not None:
        out[g.GPSDOP] = _rational(fix.hdop, 100)
    if fix.satellites is not None:
        out[g.GPSSatellites] = _ascii(str(fix.satellites))
    try:  # the receiver's own UTC time of the fix
        t = dt.datetime.fromisoformat(fix.fix_time.replace("Z", "+00:00")).astimezone(dt.UTC)
    except ValueError:
        return out
    out[g.GPSDateStamp] = _ascii(t.strftime("%Y:%m:%d"))
    out[g.GPSTimeStamp] = ((t.hour, 1), (t.minute, 1), (t.second * 1000 + t.microsecond // 1000, 1000))
    return out


def exif_bytes(moment: Moment, device: DeviceTags, *, width: int | None = None,
               height: int | None = None) -> bytes:
    """The APP1 EXIF payload for one still captured at ``moment``."""
    when = dt.datetime.fromtimestamp(moment.wall_ns / 1e9, dt.UTC)
    stamp = _ascii(when.strftime("%Y:%m:%d %H:%M:%S"))
    subsec = _ascii(f"{(moment.wall_ns // 1000) % 1_000_000:06d}")
    model = device.camera or "camera"
    zeroth: dict[int, Any] = {
        piexif.ImageIFD.Make: _ascii(MAKE),
        piexif.ImageIFD.Model: _ascii(model),
        piexif.ImageIFD.Software: _ascii(f"evidence-agent {agent.__version__}"),
        piexif.ImageIFD.DateTime: stamp,
        piexif.ImageIFD.ImageDescription: _ascii(f"device {device.device_id} at site {device.site_id}"),
        piexif.ImageIFD.Artist: _ascii(device.device_id),
    }
    exif: dict[int, Any] = {
        piexif.ExifIFD.DateTimeOriginal: stamp,
        piexif.ExifIFD.SubSecTimeOriginal: subsec,
        piexif.ExifIFD.OffsetTimeOriginal: b"+00:00",
        piexif.ExifIFD.DateTimeDigitized: stamp,
        piexif.ExifIFD.SubSecTimeDigitized: subsec,
        piexif.ExifIFD.OffsetTimeDigitized: b"+00:00",
        piexif.ExifIFD.BodySerialNumber: _ascii(device.device_id),
        piexif.ExifIFD.CameraOwnerName: _ascii(device.site_id),
    }
    if width and height:
        exif[piexif.ExifIFD.PixelXDimension] = width
        exif[piexif.ExifIFD.PixelYDimension] = height
    fix = moment.gps.fix
    data = {"0th": zeroth, "Exif": exif, "GPS": _gps_ifd(fix) if fix is not None else {}}
    try:
        return bytes(piexif.dump(data))
    except (ValueError, TypeError, KeyError) as exc:
        raise SigningError(f"EXIF for the still could not be built: {exc}") from exc


def with_exif(jpeg: bytes, moment: Moment, device: DeviceTags, *, width: int | None = None,
              height: int | None = None) -> bytes:
    """``jpeg`` with the EXIF block inserted (replacing any it had); pixels are untouched."""
    if jpeg[:2] != b"\xff\xd8":
        raise SigningError("EXIF can only go into a JPEG still")
    out = io.BytesIO()
    try:
        piexif.insert(exif_bytes(moment, device, width=width, height=height), jpeg, out)
    except (ValueError, piexif.InvalidImageDataError) as exc:
        raise SigningError(f"EXIF could not be inserted into the still: {exc}") from exc
    return out.getvalue()


def read_exif(jpeg: bytes) -> dict[str, Any]:
    """The fields a verifier compares with the record: time, offset, device, GPS (or None)."""
    try:
        data = piexif.load(jpeg)
    except Exception:  # untrusted bytes: piexif raises struct/Index/Value errors on garbage
        return {}
    ex, zeroth, gps = data.get("Exif") or {}, data.get("0th") or {}, data.get("GPS") or {}

    def text(d: dict[int, Any], tag: int) -> str | None:
        v = d.get(tag)
        return v.decode("ascii", "replace").rstrip("\x00") if isinstance(v, bytes) else None

    out: dict[str, Any] = {
        "make": text(zeroth, piexif.ImageIFD.Make), "model": text(zeroth, piexif.ImageIFD.Model),
        "serial": text(ex, piexif.ExifIFD.BodySerialNumber),
        "site": text(ex, piexif.ExifIFD.CameraOwnerName),
        "datetime_original": text(ex, piexif.ExifIFD.DateTimeOriginal),
        "subsec": text(ex, piexif.ExifIFD.SubSecTimeOriginal),
        "offset": text(ex, piexif.ExifIFD.OffsetTimeOriginal),
        "gps": None,
    }
    if out["datetime_original"]:
        try:
            t = dt.datetime.strptime(out["datetime_original"], "%Y:%m:%d %H:%M:%S")
            frac = (out["subsec"] or "0").ljust(6, "0")[:6]
            off = out["offset"] or "+00:00"
            out["captured"] = dt.datetime.fromisoformat(f"{t.isoformat()}.{frac}{off}").astimezone(
                dt.UTC).isoformat().replace("+00:00", "Z")
        except ValueError:
            out["captured"] = None
    if piexif.GPSIFD.GPSLatitude in gps and piexif.GPSIFD.GPSLongitude in gps:
        def deg(v: Any, ref: Any, neg: bytes) -> float:
            d = sum(float(Fraction(n, q)) / f for (n, q), f in zip(v, (1, 60, 3600), strict=True))
            return -d if ref == neg else d

        out["gps"] = {"lat": round(deg(gps[piexif.GPSIFD.GPSLatitude], gps.get(piexif.GPSIFD.GPSLatitudeRef), b"S"), 7),
                      "lon": round(deg(gps[piexif.GPSIFD.GPSLongitude], gps.get(piexif.GPSIFD.GPSLongitudeRef),
                                       b"W"), 7)}
    return out

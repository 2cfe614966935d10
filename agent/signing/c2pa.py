"""C2PA Content Credentials for stills and segments, signed through a callback with the device key.

The project's own signed record stays the source of truth (and names the manifest); C2PA makes the
same provenance readable by any Content Credentials validator. The private key never leaves
:class:`~agent.signing.keys.DeviceIdentity`: c2pa-rs hands us the bytes to sign and we return an
ECDSA P-256 signature. The certificate chain given to c2pa is leaf -> intermediates, without the
self-signed root (a validator must get the root from its own trust list).

Validators that do not trust the issuing CA report ``signingCredential.untrusted`` -- expected until
the customs CA is one of their trust anchors; every other failure code is a real problem.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import agent
from agent.core.errors import AgentError, SigningError, VerificationError
from agent.core.model import GpsReading

DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
EXIF_NS = "http://ns.adobe.com/exif/1.0/"
UNTRUSTED = "signingCredential.untrusted"


@dataclass(frozen=True)
class C2paResult:
    """What was embedded: the manifest label (urn:c2pa:...) and how long signing took."""

    manifest_id: str
    seconds: float
    size: int  # bytes of the signed file
    timestamped: bool = False  # the signature carries an RFC 3161 token from the configured TSA
    tsa_error: str | None = None  # why it does not although a TSA is configured (signed without one)


def _dms(value: float, pos: str, neg: str) -> str:
    """XMP GPSCoordinate "DDD,MM.mmmmmmK" (what exif:GPSLatitude/Longitude hold)."""
    ref = pos if value >= 0 else neg
    value = abs(value)
    deg = int(value)
    return f"{deg},{(value - deg) * 60:.6f}{ref}"


def gps_metadata(gps: GpsReading | None) -> dict[str, Any]:
    """exif:GPS* fields for c2pa.metadata from a real fix; nothing at all without one (never a guess)."""
    if gps is None or gps.fix is None:
        return {}
    f = gps.fix
    out: dict[str, Any] = {
        "exif:GPSVersionID": "2.2.0.0",
        "exif:GPSLatitude": _dms(f.lat, "N", "S"),
        "exif:GPSLongitude": _dms(f.lon, "E", "W"),
        "exif:GPSTimeStamp": f.fix_time,
        "exif:GPSMeasureMode": str(f.mode),
    }
    if f.alt_m is not None:
        out["exif:GPSAltitudeRef"] = 0 if f.alt_m >= 0 else 1
        out["exif:GPSAltitude"] = f"{round(abs(f.alt_m) * 100)}/100"
    if f.hdop is not None:
        out["exif:GPSDOP"] = f"{round(f.hdop * 100)}/100"
    if f.satellites is not None:
        out["exif:GPSSatellites"] = str(f.satellites)
    return out


def time_metadata(captured_ns: int | None) -> dict[str, Any]:
    """exif:DateTimeOriginal (XMP form: ISO 8601 with microseconds and offset) = the record's captured.wall."""
    if captured_ns is None:
        return {}
    when = dt.datetime.fromtimestamp(captured_ns // 1000 / 1e6, dt.UTC)
    return {"exif:DateTimeOriginal": when.isoformat(timespec="microseconds")}


def chain_for_c2pa(chain: tuple[x509.Certificate, ...]) -> str:
    """Leaf then intermediates as PEM, dropping self-signed roots (C2PA wants the root out of band)."""
    certs = [c for i, c in enumerate(chain) if i == 0 or c.subject != c.issuer]
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


class C2paSigner:
    """Embeds a manifest (created/digitalCapture action, GPS metadata) into MP4 and JPEG files.

    Not thread-safe: use it from one worker thread (the media sealer's).
    """

    def __init__(self, sign: Callable[[bytes], bytes], chain: tuple[x509.Certificate, ...], *,
                 tsa_url: str | None = None, claim_generator: str = "evidence-agent",
                 thumbnail: bool = False) -> None:
        self._sign = sign
        self._chain_pem = chain_for_c2pa(chain)
        self._tsa_url = tsa_url
        self._generator = claim_generator
        self._thumbnail = thumbnail
        self._signer: Any = None
        self._plain_signer: Any = None  # without TSA: used when the TSA cannot be reached
        self._context: Any = None

    def _get_context(self) -> Any:
        if self._context is None:
            import c2pa

            # A thumbnail costs ~100 ms per JPEG on the signing thread and repeats the still itself.
            self._context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": self._thumbnail}}})
        return self._context

    def _get_signer(self, with_tsa: bool = True) -> Any:
        import c2pa  # imported here: only the capture pipeline needs the native library

        if (self._signer if with_tsa else self._plain_signer) is None:
            def callback(data: bytes) -> bytes:
                return self._sign(bytes(data))  # DER ECDSA; c2pa-rs converts it to the COSE form

            try:
                signer = c2pa.Signer.from_callback(callback, c2pa.C2paSigningAlg.ES256, self._chain_pem,
                                                   self._tsa_url if with_tsa else None)
            except c2pa.C2paError as exc:
                raise SigningError(f"C2PA signer refused the device certificate chain: {exc}") from exc
            if with_tsa:
                self._signer = signer
            else:
                self._plain_signer = signer
        return self._signer if with_tsa else self._plain_signer

    def _sign_into(self, manifest: dict[str, Any], src: Path, dst: Path, mime: str, with_tsa: bool) -> None:
        import c2pa

        builder = c2pa.Builder(json.dumps(manifest), self._get_context())
        with open(src, "rb") as fin, open(dst, "w+b") as fout:
            builder.sign(self._get_signer(with_tsa), mime, fin, fout)
            fout.flush()
            os.fsync(fout.fileno())

    def manifest(self, mime: str, title: str, gps: GpsReading | None,
                 extra: dict[str, Any] | None = None, captured_ns: int | None = None) -> dict[str, Any]:
        assertions: list[dict[str, Any]] = [
            {"label": "c2pa.actions",
             "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": DIGITAL_CAPTURE}]}},
        ]
        meta = {**time_metadata(captured_ns), **gps_metadata(gps)}
        if meta:
            assertions.append({"label": "c2pa.metadata", "data": {"@context": {"exif": EXIF_NS}, **meta}})
        if extra:
            assertions.append({"label": "org.evidence-agent.record", "data": extra})
        return {"claim_generator_info": [{"name": self._generator, "version": agent.__version__}],
                "title": title, "format": mime, "assertions": assertions}

    def sign_file(self, src: Path, dst: Path, mime: str, *, title: str, gps: GpsReading | None,
                  extra: dict[str, Any] | None = None, captured_ns: int | None = None) -> C2paResult:
        """Write ``src`` with an embedded manifest to ``dst`` (fsynced); ``src`` is left untouched."""
        import c2pa

        t0 = time.perf_counter()
        manifest = self.manifest(mime, title, gps, extra, captured_ns)
        tsa_error = None
        try:
            try:
                self._sign_into(manifest, src, dst, mime, with_tsa=True)
            except c2pa.C2paError as exc:
                if self._tsa_url is None:
                    raise
                # An offline site keeps its Content Credentials; the anchor log time-stamps the record later.
                tsa_error = str(exc)
                self._sign_into(manifest, src, dst, mime, with_tsa=False)
        except c2pa.C2paError as exc:
            raise SigningError(f"C2PA signing of {src.name} failed: {exc}") from exc
        seconds = time.perf_counter() - t0
        report = read_manifest(dst)
        return C2paResult(manifest_id=str(report["active_manifest"]), seconds=seconds, size=dst.stat().st_size,
                          timestamped=self._tsa_url is not None and tsa_error is None, tsa_error=tsa_error)

    def close(self) -> None:
        for res in (self._signer, self._plain_signer, self._context):
            if res is not None:
                res.close()
        self._signer = self._plain_signer = self._context = None


class StillCredentials:
    """C2PA for stills made outside the recorder (video off): thread-safe; a failure keeps the plain still.

    Stills come from the still loop, the button and officer commands at once; one lock serialises the signer.
    """

    def __init__(self, signer: C2paSigner, staging: Callable[[str], Path]) -> None:
        self._signer, self._staging = signer, staging
        self._lock = threading.Lock()

    def embed(self, jpeg: bytes, *, title: str, gps: GpsReading | None, captured_ns: int,
              extra: dict[str, Any]) -> tuple[Path | bytes, dict[str, Any]]:
        """(signed staging file, record info) or, when signing failed, (the plain bytes, {"error": ...})."""
        raw, dst = self._staging("jpg"), self._staging("jpg")
        try:
            raw.write_bytes(jpeg)
            with self._lock:
                res = self._signer.sign_file(raw, dst, "image/jpeg", title=title, gps=gps, extra=extra,
                                             captured_ns=captured_ns)
        except (AgentError, OSError) as exc:
            dst.unlink(missing_ok=True)
            return jpeg, {"error": str(exc)}
        finally:
            raw.unlink(missing_ok=True)
        info: dict[str, Any] = {"manifest": res.manifest_id, "sign_s": round(res.seconds, 4)}
        if res.timestamped or res.tsa_error:
            info["tsa"] = "time-stamped" if res.timestamped else f"TSA unreachable: {res.tsa_error}"
        return dst, info

    def close(self) -> None:
        with self._lock:
            self._signer.close()


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest store as JSON (c2pa Reader), with the validation state and failure codes."""
    import c2pa

    return _manifest(lambda: c2pa.Reader(str(path)), path.name)


def read_manifest_stream(fh: IO[bytes], mime: str, where: str = "stream") -> dict[str, Any]:
    """Like read_manifest, for a file inside an export bundle (any readable binary stream)."""
    import c2pa

    return _manifest(lambda: c2pa.Reader(mime, fh), where)


def _manifest(open_reader: Callable[[], Any], where: str) -> dict[str, Any]:
    import c2pa

    try:
        with open_reader() as reader:
            data: dict[str, Any] = json.loads(reader.json())
    except c2pa.C2paError as exc:
        raise VerificationError(f"{where}: no readable C2PA manifest ({exc})") from exc
    results = (data.get("validation_results") or {}).get("activeManifest") or {}
    data["failure_codes"] = [f["code"] for f in results.get("failure", [])]
    return data


def check_c2pa(path: Path, *, allowed_failures: frozenset[str] = frozenset({UNTRUSTED})) -> dict[str, Any]:
    """Raise VerificationError unless the manifest validates (an untrusted dev CA is allowed)."""
    data = read_manifest(path)
    bad = [c for c in data["failure_codes"] if c not in allowed_failures]
    if bad or data.get("validation_state") not in ("Valid", "Trusted"):
        raise VerificationError(f"{path.name}: C2PA manifest is {data.get('validation_state')}",
                                [f"{path.name}: C2PA {c}" for c in bad])
    return data

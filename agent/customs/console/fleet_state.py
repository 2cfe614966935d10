"""The fleet table: retained availability/status and signed alerts, copied into a fixed, bounded shape.

Everything here came from the wire: values are copied into a fixed shape with bounded strings, never
passed through as they came. Alerts are signed evidence records; an alert is shown only if its
signature verifies and its certificate names the device (and chains to the device CA when one is set).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import SigningError, VerificationError
from agent.customs.console.badges import chain_line, signature_scheme
from agent.signing.records import parse_sidecar
from agent.signing.trust import verify_chain, verify_signature
from agent.wire.mqtt import Inbound
from agent.wire.topics import fleet_filter, parse_device_topic

log = logging.getLogger(__name__)

MAX_STATUS_BYTES = 64 * 1024
MAX_ALERTS = 20


def _s(value: Any, limit: int = 120) -> str | None:
    return None if value is None else str(value)[:limit]


@dataclass
class DeviceView:
    """What the fleet page shows for one device."""

    site: str
    device: str
    online: bool | None = None
    last_seen: float | None = None  # epoch seconds: last message of any kind from it
    gps: dict[str, Any] | None = None
    clock: dict[str, Any] | None = None
    selftest: dict[str, Any] | None = None
    camera: str | None = None
    status_time: str | None = None
    trust: dict[str, Any] | None = None  # officer trust version the device reports (signed bundles)
    upcoming: list[dict[str, Any]] = field(default_factory=list)  # inspections the device has advance notice of
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_ALERTS))

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["alerts"] = list(self.alerts)
        return out


def _gps(doc: Any) -> dict[str, Any] | None:
    """A GpsReading record: ``{"fix": "3d", "lat", "lon", ...}`` or ``{"fix": "none", "status"}``."""
    if not isinstance(doc, dict):
        return None
    if doc.get("fix") in (None, "none"):
        return {"fix": False, "status": _s(doc.get("status") or "no fix", 60)}
    try:
        return {"fix": True, "mode": _s(doc.get("fix"), 4), "lat": float(doc["lat"]), "lon": float(doc["lon"]),
                "hdop": None if doc.get("hdop") is None else float(doc["hdop"]),
                "age_s": float(doc["age_s"]) if isinstance(doc.get("age_s"), int | float) else None,
                "simulated": doc.get("talker") == "sim"}
    except (KeyError, TypeError, ValueError):
        return {"fix": False, "status": "malformed GPS in status"}


def _clock(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict):
        return None
    return {"source": _s(doc.get("source"), 20), "synced": bool(doc.get("synced")),
            "est_error_s": doc.get("est_error_s") if isinstance(doc.get("est_error_s"), int | float) else None}


def _selftest(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict):
        return None
    return {"ok": doc.get("ok") if isinstance(doc.get("ok"), bool) else None, "time": _s(doc.get("time"), 40),
            "summary": _s(doc.get("summary"), 200)}


def _trust(doc: Any) -> dict[str, Any] | None:
    """``{"version": int, "last_refusal": str|None}`` from the status's ``trust`` part."""
    if not isinstance(doc, dict):
        return None
    v = doc.get("version")
    return {"version": v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53 else None,
            "last_refusal": _s(doc.get("last_refusal"), 200)}


MAX_UPCOMING = 32


def _upcoming(doc: Any) -> list[dict[str, Any]]:
    """``upcoming_inspections`` of a status: at most MAX_UPCOMING, each case/scheduled/enterprise/seq bounded."""
    if not isinstance(doc, list):
        return []
    out = []
    for n in doc[:MAX_UPCOMING]:
        if isinstance(n, dict) and isinstance(n.get("case"), str) and isinstance(n.get("scheduled"), str):
            seq = n.get("seq")
            out.append({"case": _s(n["case"], 64), "scheduled": _s(n["scheduled"], 40),
                        "enterprise": _s(n.get("enterprise"), 200),
                        "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None})
    return out


def mark_old_trust(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``trust.old`` = the device reports a trust version older than the newest any device reports."""
    versions = [d["trust"]["version"] for d in devices if d.get("trust") and d["trust"]["version"] is not None]
    newest = max(versions, default=None)
    for d in devices:
        if d.get("trust"):
            v = d["trust"]["version"]
            d["trust"]["old"] = newest is not None and v is not None and v < newest
    return devices


class FleetTracker:
    """Thread-safe device table fed by MQTT handlers; async listeners get each changed device."""

    def __init__(self, device_cas: list[x509.Certificate] | None) -> None:
        self.device_cas = device_cas
        self._lock = threading.Lock()
        self._devices: dict[tuple[str, str], DeviceView] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def subscribe_to(self, link: Any) -> None:
        for channel in ("availability", "status", "alert"):
            link.subscribe(fleet_filter(channel), self.handle, qos=1)

    def add_listener(self, fn: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)
        return remove

    def devices(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.as_json() for _k, d in sorted(self._devices.items())]

    def device(self, site: str, device: str) -> dict[str, Any] | None:
        with self._lock:
            d = self._devices.get((site, device))
            return None if d is None else d.as_json()

    def handle(self, msg: Inbound) -> None:
        """MQTT handler (link worker thread); a bad message is logged and dropped, never raised."""
        try:
            site, device, channel = parse_device_topic(msg.topic)
        except ValueError:
            return
        try:
            event = self._apply(site, device, channel, bytes(msg.payload))
        except (ValueError, VerificationError, SigningError) as exc:
            log.warning("fleet: %s message from %s/%s refused: %s", channel, site, device, exc)
            return
        if event is None:
            return
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            fn(event)

    def _apply(self, site: str, device: str, channel: str, payload: bytes) -> dict[str, Any] | None:
        alert: dict[str, Any] | None = None
        if channel == "alert":
            alert = self._verify_alert(device, payload)
        elif channel == "status" and len(payload) > MAX_STATUS_BYTES:
            raise ValueError(f"status document of {len(payload)} bytes is over {MAX_STATUS_BYTES}")
        elif channel not in ("availability", "status"):
            return None
        doc = json.loads(payload) if channel == "status" and payload else None
        with self._lock:
            d = self._devices.setdefault((site, device), DeviceView(site, device))
            if channel == "availability":
                text = payload.decode(errors="replace").strip()
                d.online = text == "online"
                if d.online:
                    d.last_seen = time.time()
            elif channel == "status" and isinstance(doc, dict):
                d.last_seen, d.online = time.time(), True if d.online is None else d.online
                d.gps, d.clock = _gps(doc.get("gps")), _clock(doc.get("clock"))
                d.selftest = _selftest(doc.get("selftest") or doc.get("last_selftest"))
                cam = doc.get("camera")
                d.camera = _s(cam.get("source") if isinstance(cam, dict) else cam)
                d.status_time = _s(doc.get("time"), 40)
                d.trust = _trust(doc.get("trust"))
                d.upcoming = _upcoming(doc.get("upcoming_inspections"))
            elif alert is not None:
                d.last_seen = time.time()
                d.alerts.appendleft(alert)
            view = d.as_json()
        return {"t": "device", "device": view, "alert": alert}

    def _verify_alert(self, device: str, payload: bytes) -> dict[str, Any]:
        signed = parse_sidecar(payload, "alert")
        certs = signed.certificates()
        if not certs:
            raise VerificationError("alert has no signing certificate")
        chain = verify_chain(certs, self.device_cas or [], device=device)  # identity, validity, chain
        verify_signature(certs[0], signed.sig, signed.body)
        key = certs[0].public_key()
        scheme = signature_scheme(key) if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        rec = signed.record
        extra: dict[str, Any] = rec["extra"] if isinstance(rec.get("extra"), dict) else {}
        return {"kind": _s(rec.get("kind"), 30), "type": _s(extra.get("type") or extra.get("state") or rec.get("kind"),
                                                            40),
                "phase": _s(extra.get("phase"), 20), "seq": rec.get("seq") if isinstance(rec.get("seq"), int) else None,
                "time": _s(captured.get("wall") if isinstance(captured := rec.get("captured"), dict) else None, 40),
                # what the two checks above established, not a bare flag
                "verified": f"{scheme} signature valid; {chain_line(chain.leaf, device, chain.trusted)}"}

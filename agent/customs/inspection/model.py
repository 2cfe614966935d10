"""An inspection session as customs keeps it: one JSON file per case, rewritten atomically on each step.

The session is the officer's log (what was asked, when, and the device-signed answer's seq and record
hash); the evidence itself stays in the ingested vault. A console or CLI restart reloads the file, and
the device's own chain keeps the open case across a device restart, so a session resumes either way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, field_validator, model_validator

from agent.core.clock import iso_seconds, parse_aware_iso
from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.core.vocab import CASE_PATTERN, ID_PATTERN, ID_RE, NOTICE_MAX_AHEAD_DAYS
from agent.core.vocab import CHECKIN_STEPS as CHECKIN_STEPS  # the report and the CLI read these two here
from agent.core.vocab import STEP_TITLES as STEP_TITLES

State = Literal["open", "started", "ended", "reported"]
MAX_DEVICES = 8  # cameras of one site in one case


def check_devices(devices: list[str]) -> list[str]:
    """The devices of a case: 1 to ``MAX_DEVICES`` distinct ids of the vocabulary's id pattern, first = primary;
    ValueError naming the first bad one otherwise."""
    if not 1 <= len(devices) <= MAX_DEVICES:
        raise ValueError(f"devices: {len(devices)} given; a case names 1 to {MAX_DEVICES} devices of its site")
    seen: set[str] = set()
    for d in devices:
        if not isinstance(d, str) or not ID_RE.match(d):
            raise ValueError(f"devices: {str(d)[:70]!r} is not a device id ({ID_PATTERN})")
        if d in seen:
            raise ValueError(f"devices: {d!r} is named twice")
        seen.add(d)
    return devices


def parse_devices(text: str | list[str]) -> list[str]:
    """``A,B`` (the console's field) or repeated ``--device`` values, checked by ``check_devices``."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    return check_devices([p.strip() for p in parts if p.strip()])


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Entry(_Model):
    """One step of the timeline: what the officer did and the device-signed item it produced."""

    at: str
    kind: Literal["notice", "readiness", "start", "checkin", "mark", "snapshot", "decision", "end", "report", "note"]
    seq: int | None = None
    record_hash: str | None = None
    label: str | None = None
    note: str | None = None
    officer: str | None = None
    ok: bool | None = None
    device: str | None = Field(default=None, pattern=ID_PATTERN, description="which device sealed it")
    details: dict[str, Any] = Field(default_factory=dict)


class Inspection(_Model):
    case: str = Field(pattern=CASE_PATTERN)
    enterprise: str = Field(min_length=1, max_length=200)
    representative: str | None = Field(default=None, max_length=200)
    devices: list[str] = Field(min_length=1, max_length=MAX_DEVICES, description="the site's devices; first = primary")
    site: str = Field(pattern=ID_PATTERN, description="the devices' MQTT site id")
    registered_site: str = Field(default="registered site", max_length=200)
    polygon: list[tuple[float, float]] = Field(min_length=3, max_length=1000)
    officers: list[str] = Field(default_factory=list, max_length=16)
    planned_minutes: int = Field(default=25, ge=1, le=24 * 60)
    scheduled: str | None = Field(default=None, max_length=40, description="ISO 8601 UTC: the advance notice's time")
    notice: dict[str, Any] | None = None  # the latest notice's delivery: at, delivered, seq, record_hash, error
    state: State = "open"
    created: str = Field(default_factory=now_iso)
    started_at: str | None = None
    ended_at: str | None = None
    start_seq: int | None = None
    end_seq: int | None = None
    outcome: str | None = None
    runs: dict[str, dict[str, int | None]] = Field(default_factory=dict,
                                                   description="per device: start_seq and end_seq of its chain")
    readiness: dict[str, Any] | None = None
    checkin: dict[str, Entry] = Field(default_factory=dict)
    entries: list[Entry] = Field(default_factory=list)
    report: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_device(cls, data: Any) -> Any:
        """A case file from before several devices names one ``device``; a dump names both (kept equal)."""
        if isinstance(data, dict) and "device" in data:
            data = dict(data)
            device = data.pop("device")
            if "devices" not in data:
                data["devices"] = [device]
            elif not data["devices"] or data["devices"][0] != device:
                raise ValueError("device must be the first of devices")
        return data

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[str]) -> list[str]:
        return check_devices(v)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def device(self) -> str:
        """The primary device: the one a device step goes to unless the officer picks another."""
        return self.devices[0]

    def pick(self, device: str | None) -> str:
        """``device`` when the case names it, else the primary; ValueError for a device not of this case."""
        if device is None:
            return self.device
        if device not in self.devices:
            raise ValueError(f"device {device[:70]!r} is not one of case {self.case}'s devices "
                             f"({', '.join(self.devices)})")
        return device

    def run_of(self, device: str) -> tuple[int | None, int | None]:
        """``(start_seq, end_seq)`` of one device's chain (a one-device case file keeps them on the case)."""
        run = self.runs.get(device)
        if run is not None:
            return run.get("start_seq"), run.get("end_seq")
        if device == self.device:
            return self.start_seq, self.end_seq
        return None, None

    def elapsed_s(self, now: dt.datetime | None = None) -> float | None:
        if self.started_at is None:
            return None
        start = dt.datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(self.ended_at.replace("Z", "+00:00")) if self.ended_at else \
            (now or dt.datetime.now(dt.UTC))
        return max(0.0, (end - start).total_seconds())

    def timer(self) -> dict[str, Any]:
        """Elapsed against planned; ``over`` once the planned duration has passed."""
        elapsed = self.elapsed_s()
        planned = self.planned_minutes * 60
        return {"elapsed_s": None if elapsed is None else round(elapsed, 1), "planned_s": planned,
                "remaining_s": None if elapsed is None else round(planned - elapsed, 1),
                "over": elapsed is not None and elapsed > planned}

    def checkin_complete(self) -> bool:
        return all(step in self.checkin for step in CHECKIN_STEPS)


def check_schedule(text: str, now: dt.datetime | None = None) -> str:
    """A scheduled time for an advance notice, as ``YYYY-MM-DDTHH:MM:SSZ``: ISO 8601 with a UTC offset, in the
    future and at most ``NOTICE_MAX_AHEAD_DAYS`` ahead (what the device also checks); ValueError otherwise."""
    try:
        when = parse_aware_iso(text.strip())
    except ValueError as exc:
        raise ValueError(f"scheduled: {text[:60]!r} is not an ISO 8601 time with a UTC offset ({exc})") from None
    now = now or dt.datetime.now(dt.UTC)
    if when <= now:
        raise ValueError(f"scheduled: {iso_seconds(when)} is in the past")
    if when > now + dt.timedelta(days=NOTICE_MAX_AHEAD_DAYS):
        raise ValueError(f"scheduled: {iso_seconds(when)} is more than {NOTICE_MAX_AHEAD_DAYS} days ahead")
    return iso_seconds(when)


def case_file_name(case: str) -> str:
    """A file name for a case number that may hold '/': readable part plus a hash against collisions."""
    return f"{case.replace('/', '_')}-{hashlib.sha256(case.encode()).hexdigest()[:8]}.json"


class InspectionStore:
    """``DATA/inspections/*.json``; one lock per store, atomic replace on every save."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "inspections"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    def path(self, case: str) -> Path:
        return self.dir / case_file_name(case)

    def create(self, inspection: Inspection) -> Inspection:
        with self._lock:
            if self.path(inspection.case).exists():
                raise ConfigError(f"inspection {inspection.case} already exists ({self.path(inspection.case)})")
            self.save(inspection)
            return inspection

    def save(self, inspection: Inspection) -> None:
        with self._lock:
            atomic_write(self.path(inspection.case), inspection.model_dump_json(indent=1).encode())

    def load(self, case: str) -> Inspection:
        path = self.path(case)
        try:
            return Inspection.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(f"no inspection {case!r} (no {path})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "file"
            raise ConfigError(f"{path}: {where}: {first.get('msg')}") from None

    def list(self) -> list[Inspection]:
        out = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                out.append(Inspection.model_validate(json.loads(p.read_bytes())))
            except (ValueError, OSError):
                continue  # a damaged file is reported when that case is opened
        return sorted(out, key=lambda i: i.created, reverse=True)

"""The rows the customs index holds, and a search query; built from a verified record, never from the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def case_of(extra: dict[str, Any]) -> str | None:
    """The case an item belongs to: ``extra.case`` (or ``case_id``) on the case's own records, else
    ``extra.inspection.case``, which the device adds to every item sealed while a case is open."""
    case = extra.get("case_id", extra.get("case"))
    if not isinstance(case, str):
        inspection = extra.get("inspection")
        case = inspection.get("case") if isinstance(inspection, dict) else None
    return case if isinstance(case, str) else None


@dataclass(frozen=True)
class ItemRow:
    """One stored evidence record (its media may follow later)."""

    device: str
    site: str
    seq: int
    item: str  # record hash
    kind: str
    captured_us: int
    sealed_us: int | None
    media_name: str | None
    media_sha256: str | None
    media_size: int | None
    event_type: str | None
    case_id: str | None
    lat: float | None
    lon: float | None
    body: str  # the canonical record JSON (the signed bytes, as text)
    media_done: bool = False

    @classmethod
    def of(cls, item: str, body: bytes, record: dict[str, Any]) -> ItemRow:
        extra = record.get("extra") if isinstance(record.get("extra"), dict) else {}
        media = record.get("media") if isinstance(record.get("media"), dict) else None
        gps = record.get("gps") if isinstance(record.get("gps"), dict) else {}
        captured = record.get("captured") if isinstance(record.get("captured"), dict) else {}
        sealed = record.get("sealed") if isinstance(record.get("sealed"), dict) else {}
        assert extra is not None and gps is not None and captured is not None and sealed is not None
        case = case_of(extra)
        etype = extra.get("type")
        lat, lon = gps.get("lat"), gps.get("lon")
        return cls(
            device=str(record["device_id"]), site=str(record["site_id"]), seq=int(record["seq"]), item=item,
            kind=str(record["kind"]), captured_us=int(captured.get("wall_us", 0)),
            sealed_us=sealed.get("wall_us") if isinstance(sealed.get("wall_us"), int) else None,
            media_name=None if media is None else str(media.get("name")),
            media_sha256=None if media is None else str(media.get("sha256")),
            media_size=None if media is None else int(media.get("size", 0)),
            event_type=etype if isinstance(etype, str) else None,
            case_id=case,
            lat=float(lat) if isinstance(lat, (int, float)) else None,
            lon=float(lon) if isinstance(lon, (int, float)) else None,
            body=body.decode(), media_done=media is None)


@dataclass(frozen=True)
class Finding:
    """Something wrong with stored evidence (a broken link, a fork, a refused record): kept, never dropped."""

    device: str
    seq: int | None
    item: str | None
    kind: str  # "chain", "fork", "refused", ...
    detail: str


@dataclass(frozen=True)
class DeviceRow:
    device: str
    site: str
    records: int
    max_seq: int
    first_us: int
    last_us: int


@dataclass(frozen=True)
class Query:
    """What the console's fleet and search pages ask for; every field narrows, None means any."""

    device: str | None = None
    site: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    kind: str | None = None
    event_type: str | None = None
    case_id: str | None = None
    limit: int = 100
    after: tuple[int, str] | None = None  # (captured_us, item) of the last row of the previous page

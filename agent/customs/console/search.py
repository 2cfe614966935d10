"""Search over the customs index (``[index] url``): records by device, site, time range, kind, event type, case.

The console only reads the index the ingest fills (``open_index_reader``: no migration, a read-only
connection). Officer input is untrusted too: every parameter is checked against a charset and a length,
times must be ISO-8601 or a date, the page size is bounded and the keyset cursor has one strict shape;
anything else is a 400 with a one-line reason. Values reach the database only as query parameters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request

from agent.core import vocab
from agent.core.vocab import CASE_RE, EVENT_TYPE_RE, ID_RE, KIND_RE, SHA256_RE
from agent.customs.console.config import ConsoleConfig
from agent.customs.console.deps import Config, get_index, get_optional_index
from agent.customs.console.index_reader import IndexReader
from agent.customs.store.model import DeviceRow, Finding, ItemRow, Query

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/search", tags=["search"])
T = TypeVar("T")

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_FINDINGS = 500
COUNT_CAP = 10_000  # "10 000+": an exact count of a broad filter would scan the whole index
_ID, _KIND, _EVENT, _CASE, _HASH = ID_RE, KIND_RE, EVENT_TYPE_RE, CASE_RE, SHA256_RE
_CURSOR = re.compile(r"(\d{1,19})\.([0-9a-f]{64})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FIELDS = {"device": _ID, "site": _ID, "kind": _KIND, "event_type": _EVENT, "case": _CASE}
PARAMS = (*FIELDS, "since", "until", "limit", "after")


class BadQuery(ValueError):
    """A search parameter the console refuses; the message is the one line the officer sees."""


def _text(name: str, value: str, pattern: re.Pattern[str]) -> str:
    if len(value) > 64 or not pattern.fullmatch(value):
        raise BadQuery(f"{name}: {value[:40]!r} is not a valid {name.replace('_', ' ')} "
                       f"(letters, digits and . _ - only, at most 64 characters; {vocab.ID_MAX} for ids)")
    return value


def parse_time(name: str, value: str, *, end_of_day: bool = False) -> int:
    """ISO-8601 (naive means UTC) or a date (the whole day) to µs since the epoch."""
    if len(value) > 40:
        raise BadQuery(f"{name}: too long for a time")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"{name}: {value[:40]!r} is not an ISO-8601 time or a date (2026-11-20 or "
                       "2026-11-20T08:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        if _DATE.fullmatch(value) and end_of_day:
            when += dt.timedelta(days=1, microseconds=-1)
        return (when.astimezone(dt.UTC) - EPOCH) // dt.timedelta(microseconds=1)
    except OverflowError:
        raise BadQuery(f"{name}: {value[:40]!r} is out of range") from None


def iso(us: int) -> str:
    return (EPOCH + dt.timedelta(microseconds=us)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_cursor(row: ItemRow) -> str:
    return f"{row.captured_us}.{row.item}"


def parse_cursor(value: str) -> tuple[int, str]:
    m = _CURSOR.fullmatch(value)
    if m is None:
        raise BadQuery("after: not a cursor this console made (use the 'next' value of the previous page)")
    return int(m.group(1)), m.group(2)


def parse_query(items: Iterable[tuple[str, str]]) -> Query:
    """Query-string pairs to a ``Query``; ``BadQuery`` for unknown, repeated or malformed parameters."""
    seen: dict[str, str] = {}
    for key, value in items:
        if key not in PARAMS:
            raise BadQuery(f"unknown parameter {key[:40]!r} (known: {', '.join(PARAMS)})")
        if key in seen:
            raise BadQuery(f"{key}: given more than once")
        seen[key] = value
    args: dict[str, Any] = {}
    for key, pattern in FIELDS.items():
        if seen.get(key):
            args["case_id" if key == "case" else key] = _text(key, seen[key], pattern)
    if seen.get("since"):
        args["since_us"] = parse_time("since", seen["since"])
    if seen.get("until"):
        args["until_us"] = parse_time("until", seen["until"], end_of_day=True)
    if "since_us" in args and "until_us" in args and args["since_us"] > args["until_us"]:
        raise BadQuery("since: after until")
    limit = seen.get("limit") or str(DEFAULT_LIMIT)
    if not (limit.isascii() and limit.isdigit() and len(limit) <= 4 and 1 <= int(limit) <= MAX_LIMIT):
        raise BadQuery(f"limit: {limit[:20]!r} is not a whole number from 1 to {MAX_LIMIT}")
    args["limit"] = int(limit)
    if seen.get("after"):
        args["after"] = parse_cursor(seen["after"])
    return Query(**args)


Reader = Annotated[IndexReader, Depends(get_index)]
OptionalIndex = Annotated[IndexReader | None, Depends(get_optional_index)]


def row_json(r: ItemRow) -> dict[str, Any]:
    media = None if r.media_name is None else {"name": r.media_name, "sha256": r.media_sha256,
                                                "size": r.media_size, "stored": r.media_done}
    return {"device": r.device, "site": r.site, "seq": r.seq, "kind": r.kind, "item": r.item,
            "captured": iso(r.captured_us), "captured_us": r.captured_us, "event_type": r.event_type,
            "case": r.case_id, "lat": r.lat, "lon": r.lon, "media": media}


def device_json(d: DeviceRow) -> dict[str, Any]:
    return {"device": d.device, "site": d.site, "records": d.records, "max_seq": d.max_seq,
            "first": iso(d.first_us), "last": iso(d.last_us), "first_us": d.first_us, "last_us": d.last_us}


def finding_json(f: Finding) -> dict[str, Any]:
    return {"device": f.device, "seq": f.seq, "item": f.item, "kind": f.kind, "detail": f.detail}


def _bad(exc: BadQuery) -> HTTPException:
    return HTTPException(400, str(exc))


@router.get("")
async def search(request: Request, reader: Reader) -> dict[str, Any]:
    """One page of records, newest capture first; ``next`` is the cursor of the following page."""
    try:
        query = parse_query(request.query_params.multi_items())
    except BadQuery as exc:
        raise _bad(exc) from None
    rows = await asyncio.to_thread(reader.call, lambda ix: ix.search(query))
    count = None if query.after is not None else \
        await asyncio.to_thread(reader.call, lambda ix: ix.count(query, COUNT_CAP + 1))
    return {"rows": [row_json(r) for r in rows], "count": None if count is None else min(count, COUNT_CAP),
            "count_capped": count is not None and count > COUNT_CAP,
            "next": make_cursor(rows[-1]) if len(rows) == query.limit else None}


@router.get("/devices")
async def devices(request: Request, reader: Reader) -> dict[str, Any]:
    """Every indexed device with its counters, and the sites (for the filter lists)."""
    if any(k != "site" for k in request.query_params):
        raise HTTPException(400, "only the site parameter is known here")
    site = request.query_params.get("site") or None
    try:
        site = None if site is None else _text("site", site, _ID)
    except BadQuery as exc:
        raise _bad(exc) from None
    rows = await asyncio.to_thread(reader.call, lambda ix: ix.devices(site))
    return {"devices": [device_json(d) for d in rows], "sites": sorted({d.site for d in rows})}


@router.get("/findings")
async def findings(request: Request, reader: Reader) -> dict[str, Any]:
    """Forks, broken chain links and refusals kept by the ingest (all, or one device's), first 500."""
    try:
        if any(k not in ("device", "kind") for k in request.query_params):
            raise BadQuery("only the device and kind parameters are known here")
        device = request.query_params.get("device") or None
        kind = request.query_params.get("kind") or None
        device = None if device is None else _text("device", device, _ID)
        kind = None if kind is None else _text("kind", kind, _KIND)
    except BadQuery as exc:
        raise _bad(exc) from None
    found = await asyncio.to_thread(reader.call, lambda ix: ix.findings(device))
    found = [f for f in found if kind is None or f.kind == kind]
    return {"findings": [finding_json(f) for f in found[:MAX_FINDINGS]], "total": len(found)}


@router.get("/item/{device}/{item}")
async def item(device: str, item: str, reader: Reader, cfg: Config) -> dict[str, Any]:
    """The stored record (its canonical, signed body), the device's findings and how to verify its folder."""
    try:
        _text("device", device, _ID)
        if not _HASH.fullmatch(item):
            raise BadQuery("item: not a record hash (64 lowercase hex digits)")
    except BadQuery as exc:
        raise _bad(exc) from None
    row = await asyncio.to_thread(reader.call, lambda ix: ix.get_item(device, item))
    if row is None:
        raise HTTPException(404, f"no record {item[:16]}… of {device} in the index")
    found = await asyncio.to_thread(reader.call, lambda ix: ix.findings(device))
    return {"row": row_json(row), "record": json.loads(row.body), "canonical": row.body,
            "findings": [finding_json(f) for f in found[:MAX_FINDINGS]], "verify": verify_hint(cfg, device)}


def verify_hint(cfg: ConsoleConfig | None, device: str) -> str:
    """The command that checks the device's folder as the ingest wrote it (``ingest --out DIR``)."""
    root = cfg.inspections.evidence if cfg is not None and cfg.inspections.evidence is not None else None
    folder = f"{root}/{device}" if root is not None else f"<ingest --out folder>/{device}"
    ca = cfg.officer.device_ca if cfg is not None and cfg.officer.device_ca is not None else "<device-ca.pem>"
    return f"evidence-agent verify {folder} --ca {ca}"


def index_devices(reader: IndexReader | None) -> list[dict[str, Any]] | None:
    """For the fleet page: the index's figures per device, or None when no index is configured."""
    if reader is None:
        return None
    try:
        return [device_json(d) for d in reader.call(lambda ix: ix.devices())]
    except HTTPException:
        return None

"""Console pages and JSON API for inspections: the same ``InspectionService`` steps as the CLI, one click each.

Mounted by ``evidence-officer console`` (``create_app(services, extra_routers=[router])``); the session store
and the ingest folder are typed dependencies (``[inspections]`` in the console config). One route and one body
model per step; every step runs the signed command in a worker thread, under one lock so two clicks never
interleave a session file.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.errors import AgentError, CommandError, ConfigError
from agent.core.vocab import CASE_PATTERN, CHECKIN_STEPS, ID_PATTERN, CheckinStep, StillResolution
from agent.customs.cmd_cmd import OfficerClient
from agent.customs.console.deps import Client, Evidence, ReportTsa, get_inspections
from agent.customs.console.pages import STATIC, page_lang
from agent.customs.i18n import catalog
from agent.customs.inspection import evidence as ev
from agent.customs.inspection.audio import audio_items
from agent.customs.inspection.geo import MAP_LEGEND, parse_polygon, site_map_svg
from agent.customs.inspection.model import Entry, Inspection, InspectionStore, check_schedule, parse_devices
from agent.customs.inspection.service import InspectionService
from agent.customs.inspection.zoom import zoom_items

router = APIRouter(tags=["inspections"])
_lock = threading.Lock()


class OpenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case: str = Field(pattern=CASE_PATTERN)
    enterprise: str = Field(min_length=1, max_length=200)
    device: str = Field(max_length=600, description="device id, or several of the site's: comma-separated")
    site: str
    polygon: str = Field(min_length=5, max_length=50_000, description='"lat,lon;lat,lon;..."')
    registered_site: str | None = Field(default=None, max_length=200)
    representative: str | None = Field(default=None, max_length=200)
    officers: list[str] = Field(default_factory=list, max_length=16)
    planned_minutes: int = Field(default=25, ge=1, le=24 * 60)
    scheduled: str | None = Field(default=None, max_length=40,
                                  description="ISO 8601 with a UTC offset: sends the device an advance notice")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoBody(_Body):
    """Steps that take nothing but the case (an empty JSON object; any field is refused)."""


class DeviceBody(_Body):
    """A step that goes to one device: ``device`` is one of the case's (its primary when absent)."""

    device: str | None = Field(default=None, pattern=ID_PATTERN)


class CheckinBody(DeviceBody):
    step: CheckinStep
    note: str | None = Field(default=None, max_length=2000)
    resolution: StillResolution = "stream"  # "full": the camera's full sensor, for a readable document


class MarkBody(DeviceBody):
    note: str = Field(min_length=1, max_length=2000)


class SnapshotBody(DeviceBody):
    note: str | None = Field(default=None, max_length=2000)
    resolution: StillResolution = "stream"


class DecisionBody(DeviceBody):
    decision: Literal["continue", "shift_to_onsite"]
    reason: str = Field(min_length=1, max_length=2000)


class EndBody(_Body):
    outcome: Literal["completed", "shift_to_onsite", "aborted"] | None = None
    note: str | None = Field(default=None, max_length=2000)


class ReportBody(_Body):
    """``reason``: why the report is built again (required once the case has a report); ``lang``: the report's
    language (Chinese with English by default)."""

    reason: str | None = Field(default=None, max_length=500)
    lang: Literal["zh-en", "zh", "en"] = "zh-en"


Inspections = Annotated[InspectionStore, Depends(get_inspections)]
Case = Annotated[str, Query(pattern=CASE_PATTERN)]


def _service(store: InspectionStore, client: OfficerClient, case: str, device: str | None = None) \
        -> InspectionService:
    """The case's service; ``device``, when given, must be one of the case's (422 otherwise)."""
    try:
        service = InspectionService(store, case, client, officer=client.officer.officer_id)
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None
    try:
        service.device(device)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return service


async def _run(fn: Callable[[], Any]) -> Any:
    def locked() -> Any:
        with _lock:
            return fn()

    try:
        return await asyncio.to_thread(locked)
    except CommandError as exc:  # the device refused (conflict, bad args) or the step is out of order
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:  # the console's own settings (no evidence folder): not the officer's mistake
        raise HTTPException(503, str(exc)) from None
    except AgentError as exc:  # no reply, verification failure, configuration
        raise HTTPException(502, str(exc)) from None


@router.get("/inspections", include_in_schema=False)
def inspections_page() -> FileResponse:
    return FileResponse(STATIC / "inspection.html")


@router.get("/api/inspections")
def list_inspections(store: Inspections) -> list[dict[str, Any]]:
    """Every case, newest first, with its last self-test (the fleet page shows open cases and self-tests)."""
    return [{"case": i.case, "state": i.state, "enterprise": i.enterprise, "device": i.device,
             "devices": i.devices, "site": i.site,
             "created": i.created, "readiness": None if i.readiness is None else {
                 k: i.readiness.get(k) for k in ("at", "passed", "failed", "warnings")}} for i in store.list()]


@router.post("/api/inspections")
async def open_inspection(body: OpenBody, store: Inspections, client: Client) -> dict[str, Any]:
    """Open a case; with ``scheduled``, also send the device its advance notice. The case is opened even when
    the notice is refused or unanswered: its delivery (``notice``) says so, and the case page sends it again."""
    try:
        scheduled = None if body.scheduled is None else check_schedule(body.scheduled)
        insp = Inspection(case=body.case, enterprise=body.enterprise, representative=body.representative,
                          devices=parse_devices(body.device), site=body.site,
                          registered_site=body.registered_site or body.site,
                          polygon=parse_polygon(body.polygon), officers=body.officers,
                          planned_minutes=body.planned_minutes, scheduled=scheduled)
    except (ValueError, ValidationError) as exc:
        raise HTTPException(422, str(exc).splitlines()[0] if not isinstance(exc, ValidationError)
                            else f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    try:
        store.create(insp)
    except ConfigError as exc:
        raise HTTPException(409, str(exc)) from None
    if scheduled is not None:
        service = _service(store, client, insp.case)
        with contextlib.suppress(HTTPException):  # recorded on the case (notice.delivered false, the device's words)
            await _run(service.notice)
        return {"case": insp.case, "notice": service.inspection.notice}
    return {"case": insp.case, "notice": None}


@router.get("/api/inspection")
def get_inspection(request: Request, store: Inspections, client: Client, root: Evidence, case: Case) -> dict[str, Any]:
    """The session, its timer, the alerts from the ingested evidence and the site map."""
    service = _service(store, client, case)
    insp: Inspection = service.inspection
    by_device = service.items_by_device(root) if root is not None else {}
    items = ev.merged(by_device)
    loc = [e for e in insp.entries if e.kind == "checkin" and e.label == "location"]
    fixes = [((float(e.details["gps"]["lat"]), float(e.details["gps"]["lon"])), f"seq {e.seq}") for e in loc
             if isinstance((e.details.get("gps") or {}).get("lat"), int | float)]
    return {"inspection": insp.model_dump(), "timer": insp.timer(), "checkin_complete": insp.checkin_complete(),
            "steps": list(CHECKIN_STEPS), "alerts": ev.alerts_of(by_device), "received": len(items),
            "stills": service.stills(items),
            "live_sessions": [{"device": it.device, "seq": it.seq, "session": it.extra.get("session"),
                               "officer": it.extra.get("officer")} for it in items if it.kind == "live"],
            "audio": [{**a, "device": d} for d, its in by_device.items() for a in audio_items(its)],
            "zooms": zoom_items(items),
            "site_map": site_map_svg(insp.polygon, ev.track(by_device.get(insp.device, [])), fixes,
                                     legend=catalog.gettext(page_lang(request))(MAP_LEGEND))}


async def _step(fn: Callable[[], Entry]) -> dict[str, Any]:
    entry: Entry = await _run(fn)
    return entry.model_dump()


# One route and one body model per step; each runs the signed command in a worker thread.
@router.post("/api/inspection/notice")
async def notice(body: Annotated[DeviceBody, Body()], store: Inspections, client: Client,
                 case: Case) -> dict[str, Any]:
    """Send the device the advance notice of the case's scheduled time (again)."""
    service = _service(store, client, case, body.device)
    return await _step(lambda: service.notice(body.device))


@router.post("/api/inspection/ready")
async def ready(body: Annotated[DeviceBody, Body()], store: Inspections, client: Client, case: Case) -> dict[str, Any]:
    """The device's self-test, recorded pass or fail."""
    service = _service(store, client, case, body.device)
    return await _step(lambda: service.readiness(body.device))


@router.post("/api/inspection/start")
async def start(_body: Annotated[NoBody, Body()], store: Inspections, client: Client, case: Case) -> dict[str, Any]:
    return await _step(_service(store, client, case).start)


@router.post("/api/inspection/checkin")
async def checkin(body: CheckinBody, store: Inspections, client: Client, case: Case) -> dict[str, Any]:
    service = _service(store, client, case, body.device)
    return await _step(lambda: service.checkin(body.step, body.note, body.device, body.resolution))


@router.post("/api/inspection/mark")
async def mark(body: MarkBody, store: Inspections, client: Client, case: Case) -> dict[str, Any]:
    service = _service(store, client, case, body.device)
    return await _step(lambda: service.mark(body.note, body.device))


@router.post("/api/inspection/snapshot")
async def snapshot(body: SnapshotBody, store: Inspections, client: Client, case: Case) -> dict[str, Any]:
    service = _service(store, client, case, body.device)
    return await _step(lambda: service.snapshot(body.note, device=body.device, resolution=body.resolution))


@router.post("/api/inspection/decision")
async def decision(body: DecisionBody, store: Inspections, client: Client, case: Case) -> dict[str, Any]:
    service = _service(store, client, case, body.device)
    return await _step(lambda: service.decision(body.decision, body.reason, body.device))


@router.post("/api/inspection/end")
async def end(body: EndBody, store: Inspections, client: Client, case: Case) -> dict[str, Any]:
    service = _service(store, client, case)
    return await _step(lambda: service.end(body.outcome, body.note))


@router.post("/api/inspection/report")
async def report(body: Annotated[ReportBody, Body()], store: Inspections, client: Client, root: Evidence,
                 tsa: ReportTsa, case: Case) -> dict[str, Any]:
    """Build, sign and seal the report (a new version, with a reason, when one exists); verify its bundle. The
    officer's PDF signature carries an RFC 3161 timestamp from ``[report] tsa_url`` when one is configured."""
    from agent.customs.inspection.report import next_version

    service = _service(store, client, case)
    try:
        next_version(service.inspection, body.reason)
    except ConfigError as exc:  # the officer's mistake (a rebuild without a reason): said beside the button
        raise HTTPException(409, str(exc).replace("(--reason TEXT)", "(the reason field)")) from None
    result: dict[str, Any] = await _run(lambda: _report(store, client, root, service, body.reason, body.lang, tsa))
    return result


def _report(store: InspectionStore, client: OfficerClient, root: Path | None,
            service: InspectionService, reason: str | None, lang: str,
            tsa_url: str | None = None) -> dict[str, Any]:
    from agent.customs.inspection.report import build_report

    service.require_ended()
    if root is None:
        raise ConfigError("no evidence folder: set [inspections] evidence = INGEST_OUT in the console config")
    res = build_report(service, root, store.dir.parent / "reports", client.officer, wait_s=60.0, reason=reason,
                       lang=lang, tsa_url=tsa_url)
    return {"version": res.version, "supersedes": res.supersedes, "verified": res.verify["ok"],
            "problems": res.verify["problems"], "items": res.items,
            "sealed_seq": res.sealed_seq, "manifest_sha256": res.manifest_sha256,
            "report_check": res.verify.get("report"), "findings": list(res.findings), "seconds": res.seconds,
            "timestamped": tsa_url is not None}


@router.get("/api/inspection/still")
def still(store: Inspections, client: Client, root: Evidence, case: Case,
          seq: Annotated[int, Query(ge=0, le=2**53)],
          device: Annotated[str | None, Query(pattern=ID_PATTERN)] = None) -> FileResponse:
    """One still of the case, full size: found by case and seq in the ingested evidence (never a client path),
    served with the type its signed record names (JPEG or PNG only) and ``nosniff``."""
    if root is None:
        raise HTTPException(503, "no evidence folder: set [inspections] evidence = INGEST_OUT in the console config")
    try:
        path, media_type = _service(store, client, case).still(root, seq, device)
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None
    return FileResponse(path, media_type=media_type, headers={
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600",
        "Content-Disposition": f'inline; filename="{case.replace("/", "_")}-{device or "primary"}-{seq}.'
                               f'{media_type.split("/")[1]}"'})


@router.get("/api/inspection/report/{name}")
def report_file(name: Literal["report.pdf", "report.html", "bundle.zip"], store: Inspections, client: Client,
                case: Case) -> FileResponse:
    insp = _service(store, client, case).inspection
    if not insp.report:
        raise HTTPException(404, f"inspection {case} has no report yet")
    bundle = Path(str(insp.report["bundle"]))
    path = bundle if name == "bundle.zip" else bundle.with_name(bundle.name.replace("-bundle.zip", f"-{name}"))
    if not path.is_file():
        raise HTTPException(404, f"{path.name} is missing")
    return FileResponse(path, filename=f"{case.replace('/', '_')}-{name}")

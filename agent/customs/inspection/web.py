"""Console pages and JSON API for inspections: the same ``InspectionService`` steps as the CLI, one click each.

Mounted by ``evidence-officer console`` (``create_app(services, extra_routers=[router])``); the session store
and the ingest folder come from ``services.extra`` (``[inspections]`` in the console config). Every step
runs the signed command in a worker thread, under one lock so two clicks never interleave a session file.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.errors import AgentError, CommandError, ConfigError
from agent.customs.console.deps import Services
from agent.customs.console.pages import STATIC
from agent.customs.inspection import evidence as ev
from agent.customs.inspection.geo import parse_polygon, site_map_svg
from agent.customs.inspection.model import CASE_PATTERN, CHECKIN_STEPS, Entry, Inspection, InspectionStore

router = APIRouter(tags=["inspections"])
_lock = threading.Lock()


class OpenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case: str = Field(pattern=CASE_PATTERN)
    enterprise: str = Field(min_length=1, max_length=200)
    device: str
    site: str
    polygon: str = Field(min_length=5, max_length=50_000, description='"lat,lon;lat,lon;..."')
    registered_site: str | None = Field(default=None, max_length=200)
    representative: str | None = Field(default=None, max_length=200)
    officers: list[str] = Field(default_factory=list, max_length=16)
    planned_minutes: int = Field(default=25, ge=1, le=24 * 60)


class StepBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: Literal["location", "identity_document", "power_of_attorney", "credentials"] | None = None
    note: str | None = Field(default=None, max_length=2000)
    decision: Literal["continue", "shift_to_onsite"] | None = None
    reason: str | None = Field(default=None, max_length=2000)
    outcome: Literal["completed", "shift_to_onsite", "aborted"] | None = None


def _store(services: Services) -> InspectionStore:
    store = services.extra.get("inspections")
    if not isinstance(store, InspectionStore):
        raise HTTPException(503, "inspections are not configured ([inspections] data = DIR in the console config)")
    return store


def _evidence(services: Services) -> Path | None:
    root = services.extra.get("evidence")
    return root if isinstance(root, Path) else None


def _service(services: Services, case: str) -> Any:
    from agent.customs.inspection.service import InspectionService

    try:
        return InspectionService(_store(services), case, services.client, officer=services.client.officer.officer_id)
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None


async def _run(fn: Callable[[], Any]) -> Any:
    def locked() -> Any:
        with _lock:
            return fn()

    try:
        return await asyncio.to_thread(locked)
    except CommandError as exc:  # the device refused (conflict, bad args) or the step is out of order
        raise HTTPException(409, str(exc)) from None
    except AgentError as exc:  # no reply, verification failure, configuration
        raise HTTPException(502, str(exc)) from None


@router.get("/inspections", include_in_schema=False)
def inspections_page() -> FileResponse:
    return FileResponse(STATIC / "inspection.html")


@router.get("/api/inspections")
def list_inspections(services: Services) -> list[dict[str, Any]]:
    return [{"case": i.case, "state": i.state, "enterprise": i.enterprise, "device": i.device, "site": i.site,
             "created": i.created} for i in _store(services).list()]


@router.post("/api/inspections")
def open_inspection(body: OpenBody, services: Services) -> dict[str, Any]:
    try:
        insp = Inspection(case=body.case, enterprise=body.enterprise, representative=body.representative,
                          device=body.device, site=body.site, registered_site=body.registered_site or body.site,
                          polygon=parse_polygon(body.polygon), officers=body.officers,
                          planned_minutes=body.planned_minutes)
    except (ValueError, ValidationError) as exc:
        raise HTTPException(422, str(exc).splitlines()[0] if not isinstance(exc, ValidationError)
                            else f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    try:
        _store(services).create(insp)
    except ConfigError as exc:
        raise HTTPException(409, str(exc)) from None
    return {"case": insp.case}


@router.get("/api/inspection")
def get_inspection(services: Services, case: str = Query(pattern=CASE_PATTERN)) -> dict[str, Any]:
    """The session, its timer, the alerts from the ingested evidence and the site map."""
    service = _service(services, case)
    insp: Inspection = service.inspection
    root = _evidence(services)
    items = service.items(root) if root is not None else []
    loc = [e for e in insp.entries if e.kind == "checkin" and e.label == "location"]
    fixes = [((float(e.details["gps"]["lat"]), float(e.details["gps"]["lon"])), f"seq {e.seq}") for e in loc
             if isinstance((e.details.get("gps") or {}).get("lat"), int | float)]
    return {"inspection": insp.model_dump(), "timer": insp.timer(), "checkin_complete": insp.checkin_complete(),
            "steps": list(CHECKIN_STEPS), "alerts": ev.alerts(items), "received": len(items),
            "live_sessions": [{"seq": it.seq, "session": it.extra.get("session"), "officer": it.extra.get("officer")}
                              for it in items if it.kind == "live"],
            "site_map": site_map_svg(insp.polygon, ev.track(items), fixes)}


def _entry(e: Entry) -> dict[str, Any]:
    return e.model_dump()


@router.post("/api/inspection/{action}")
async def step(action: str, body: StepBody, services: Services,
               case: str = Query(pattern=CASE_PATTERN)) -> dict[str, Any]:
    """One step: ready, start, checkin, mark, snapshot, decision, end, report."""
    service = _service(services, case)
    if action == "ready":
        return _entry(await _run(service.readiness))
    if action == "start":
        return _entry(await _run(service.start))
    if action == "checkin" and body.step is not None:
        step_name = body.step
        return _entry(await _run(lambda: service.checkin(step_name, body.note)))
    if action == "mark" and body.note:
        note = body.note
        return _entry(await _run(lambda: service.mark(note)))
    if action == "snapshot":
        return _entry(await _run(lambda: service.snapshot(body.note)))
    if action == "decision" and body.decision is not None and body.reason:
        decision, reason = body.decision, body.reason
        return _entry(await _run(lambda: service.decision(decision, reason)))
    if action == "end":
        return _entry(await _run(lambda: service.end(body.outcome, body.note)))
    if action == "report":
        result: dict[str, Any] = await _run(lambda: _report(services, service))
        return result
    raise HTTPException(400, f"unknown step {action!r} or missing fields (step, note, decision+reason)")


def _report(services: Services, service: Any) -> dict[str, Any]:
    from agent.customs.inspection.report import build_report

    root = _evidence(services)
    if root is None:
        raise ConfigError("no evidence folder: set [inspections] evidence = INGEST_OUT in the console config")
    out = _store(services).dir.parent / "reports"
    res = build_report(service, root, out, services.client.officer, wait_s=60.0)
    return {"verified": res.verify["ok"], "problems": res.verify["problems"], "items": res.items,
            "sealed_seq": res.sealed_seq, "manifest_sha256": res.manifest_sha256,
            "report_check": res.verify.get("report"), "findings": list(res.findings), "seconds": res.seconds}


@router.get("/api/inspection/report/{name}")
def report_file(name: Literal["report.pdf", "report.html", "bundle.zip"], services: Services,
                case: str = Query(pattern=CASE_PATTERN)) -> FileResponse:
    insp = _service(services, case).inspection
    if not insp.report:
        raise HTTPException(404, f"inspection {case} has no report yet")
    bundle = Path(str(insp.report["bundle"]))
    path = bundle if name == "bundle.zip" else bundle.with_name(bundle.name.replace("-bundle.zip", f"-{name}"))
    if not path.is_file():
        raise HTTPException(404, f"{path.name} is missing")
    return FileResponse(path, filename=f"{case.replace('/', '_')}-{name}")

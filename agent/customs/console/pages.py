"""HTML pages and static files, served from the package (no build step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

from agent.core import vocab
from agent.customs.i18n import catalog
from agent.wire.topics import check_segment

STATIC = Path(__file__).resolve().parent / "static"
router = APIRouter(tags=["pages"])


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse("/fleet")


@router.get("/api/vocab")
def vocabulary() -> dict[str, Any]:
    """Record kinds, event types, labels and id patterns (agent/core/vocab.py): the pages hold no copy."""
    return vocab.as_json()


def page_lang(request: Request) -> str:
    """The officer's language: the ``lang`` cookie the pages' switch sets, else ``Accept-Language``, else English."""
    return catalog.negotiate(request.cookies.get("lang"), request.headers.get("accept-language"))


@router.get("/api/i18n")
def messages(request: Request) -> dict[str, Any]:
    """The pages' words in the officer's language (``msgid -> msgstr``, English message ids)."""
    lang = page_lang(request)
    return {"lang": lang, "langs": list(catalog.LANGS), "messages": catalog.messages(lang)}


@router.get("/fleet", include_in_schema=False)
def fleet_page() -> FileResponse:
    return FileResponse(STATIC / "fleet.html")


@router.get("/search", include_in_schema=False)
def search_page() -> FileResponse:
    return FileResponse(STATIC / "search.html")


@router.get("/live/{site}/{device}", include_in_schema=False)
def live_page(site: str, device: str) -> FileResponse:
    try:
        check_segment(site, "site id")
        check_segment(device, "device id")
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return FileResponse(STATIC / "live.html")

"""The application factory: services in, FastAPI app out; one router per resource."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from agent.customs.console import actions, fleet, live, pages, search, stills, voice
from agent.customs.console.deps import ConsoleServices
from agent.customs.console.origin import LOOPBACK_NAMES, SameOriginOnly
from agent.customs.console.tls import server_names

ROUTERS: tuple[APIRouter, ...] = (pages.router, fleet.router, live.router, actions.router, search.router,
                                  stills.router, voice.router)


def create_app(services: ConsoleServices, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    """Later pages (inspections, ...) pass their routers here or include them on the returned app."""
    app = FastAPI(title="Evidence officer console", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.services = services
    for router in (*ROUTERS, *extra_routers):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.add_middleware(SameOriginOnly, **access(services))
    return app


def access(services: ConsoleServices) -> dict[str, Any]:
    """Who may use this console (see ``SameOriginOnly``): with mutual TLS only its officer's certificate, by
    the names in the console's certificate; else loopback peers, by loopback names."""
    listen = services.cfg.listen if services.cfg else None
    if listen is None:
        return {"hosts": LOOPBACK_NAMES}
    names = (*LOOPBACK_NAMES, listen.host, *(server_names(listen.tls_cert) if listen.tls_cert else ()))
    return {"hosts": names, "officer": services.client.officer.officer_id if listen.mutual_tls else None}

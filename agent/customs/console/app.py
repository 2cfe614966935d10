"""The application factory: services in, FastAPI app out; one router per resource."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from agent.customs.console import actions, fleet, live, pages, search
from agent.customs.console.deps import ConsoleServices
from agent.customs.console.origin import LOOPBACK_NAMES, SameOriginOnly

ROUTERS: tuple[APIRouter, ...] = (pages.router, fleet.router, live.router, actions.router, search.router)


def create_app(services: ConsoleServices, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    """Later pages (inspections, ...) pass their routers here or include them on the returned app."""
    app = FastAPI(title="Evidence officer console", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.services = services
    for router in (*ROUTERS, *extra_routers):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.add_middleware(SameOriginOnly, hosts=(*LOOPBACK_NAMES, *((services.cfg.listen.host,) if services.cfg else ())))
    return app

"""The console's FastAPI app without a broker: the parts a test needs go in through ``app.dependency_overrides``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.testclient import TestClient

from agent.customs.console.app import create_app
from agent.customs.console.deps import ConsoleServices


def console_client(overrides: dict[Callable[..., Any], Any], routers: tuple[APIRouter, ...] = ()) -> TestClient:
    """A test client of the console app; ``overrides`` maps a provider (``get_client``, ``get_index``...) to the
    value its routes get."""
    blank = ConsoleServices(cfg=None, link=None, client=None, fleet=None, device_cas=None)  # type: ignore[arg-type]
    app = create_app(blank, extra_routers=routers)
    for provider, value in overrides.items():
        app.dependency_overrides[provider] = _giving(value)
    return TestClient(app, base_url="http://127.0.0.1")  # the Host the console accepts


def _giving(value: Any) -> Callable[[], Any]:
    """A provider without parameters (FastAPI would read a parameter as a query field)."""
    return lambda: value

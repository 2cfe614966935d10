"""Typed dependencies: routers ask for ``Services`` (``Annotated``) instead of reaching for globals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from cryptography import x509
from fastapi import Depends, Request, WebSocket
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from agent.customs.cmd_cmd import OfficerClient
    from agent.customs.console.config import ConsoleConfig
    from agent.customs.console.fleet import FleetTracker
    from agent.wire.mqtt import MqttLink


@dataclass
class ConsoleServices:
    """What the pages need: the officer's broker link and signing client, the fleet table, the settings."""

    cfg: ConsoleConfig
    link: MqttLink
    client: OfficerClient
    fleet: FleetTracker
    device_cas: list[x509.Certificate] | None
    extra: dict[str, Any]  # room for later pages (inspections, stores) without changing this class


def get_services(conn: HTTPConnection) -> ConsoleServices:
    services: ConsoleServices = conn.app.state.services
    return services


Services = Annotated[ConsoleServices, Depends(get_services)]
__all__ = ["ConsoleServices", "Request", "Services", "WebSocket", "get_services"]

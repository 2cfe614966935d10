"""Typed dependencies: each route asks for the part it uses (``Annotated`` + ``Depends``), never for a bag.

``create_app`` puts one ``ConsoleServices`` on ``app.state``; the providers below hand out its parts. Tests
replace any part through FastAPI's ``app.dependency_overrides[get_client] = ...`` and so on. The parts'
types live in modules that do not import this one; the route modules declare their own aliases
(``Fleet``, ``Reader``, ``Inspections``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from cryptography import x509
from fastapi import Depends, HTTPException, Request, WebSocket
from starlette.requests import HTTPConnection

from agent.customs.cmd_cmd import OfficerClient
from agent.customs.console.config import ConsoleConfig
from agent.customs.console.fleet_state import FleetTracker
from agent.customs.console.index_reader import IndexReader
from agent.customs.inspection.model import InspectionStore
from agent.wire.mqtt import MqttLink


@dataclass
class ConsoleServices:
    """What the pages need: the settings, the officer's broker link and signing client, the fleet table, the
    device CAs, and the optional parts a config may switch on (inspections, the evidence folder, the index)."""

    cfg: ConsoleConfig
    link: MqttLink
    client: OfficerClient
    fleet: FleetTracker
    device_cas: list[x509.Certificate] | None
    inspections: InspectionStore | None = None  # [inspections] data
    evidence: Path | None = None  # [inspections] evidence: the ingest's output folder
    index: IndexReader | None = None  # [index] url


def get_services(conn: HTTPConnection) -> ConsoleServices:
    services: ConsoleServices = conn.app.state.services
    return services


Services = Annotated[ConsoleServices, Depends(get_services)]


def get_config(services: Services) -> ConsoleConfig:
    return services.cfg


def get_link(services: Services) -> MqttLink:
    return services.link


def get_client(services: Services) -> OfficerClient:
    return services.client


def get_device_cas(services: Services) -> list[x509.Certificate] | None:
    return services.device_cas


def get_fleet(services: Services) -> FleetTracker:
    return services.fleet


def get_index(services: Services) -> IndexReader:
    """The customs index; 503 naming the setting when none is configured."""
    if services.index is None:
        raise HTTPException(503, "no index is configured ([index] url = the ingest's --index, in the console "
                                 "config)")
    return services.index


def get_optional_index(services: Services) -> IndexReader | None:
    return services.index


def get_inspections(services: Services) -> InspectionStore:
    """The inspection sessions; 503 naming the setting when none is configured."""
    if services.inspections is None:
        raise HTTPException(503, "inspections are not configured ([inspections] data = DIR in the console config)")
    return services.inspections


def get_evidence(services: Services) -> Path | None:
    return services.evidence


def get_report_tsa(services: Services) -> str | None:
    """``[report] tsa_url``: the TSA that time-stamps the officer's signature on reports the console builds."""
    cfg: ConsoleConfig | None = services.cfg
    return None if cfg is None else cfg.report.tsa


Config = Annotated[ConsoleConfig, Depends(get_config)]
Link = Annotated[MqttLink, Depends(get_link)]
Client = Annotated[OfficerClient, Depends(get_client)]
DeviceCas = Annotated[list[x509.Certificate] | None, Depends(get_device_cas)]
Evidence = Annotated[Path | None, Depends(get_evidence)]
ReportTsa = Annotated[str | None, Depends(get_report_tsa)]
__all__ = ["Client", "Config", "ConsoleServices", "DeviceCas", "Evidence", "Link", "ReportTsa", "Request", "Services",
           "WebSocket", "get_client", "get_config", "get_device_cas", "get_evidence", "get_fleet", "get_index",
           "get_inspections", "get_link", "get_optional_index", "get_report_tsa", "get_services"]

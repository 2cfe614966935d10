"""Officer actions from the live page: a sealed full-resolution still, a mark with a note, the digital zoom (signed
commands).

The device answers with a device-signed reply, checked by ``OfficerClient`` before anything is shown.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from agent.core.errors import AgentError
from agent.core.vocab import ZOOM_COMMAND
from agent.customs.cmd_cmd import OfficerClient
from agent.customs.console.badges import chain_line, signature_scheme
from agent.customs.console.deps import Client, DeviceCas
from agent.wire.topics import check_segment
from agent.wire.zoom import ZoomArgs

router = APIRouter(prefix="/api/devices/{site}/{device}", tags=["actions"])


class MarkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=2000)


def _ids(site: str, device: str) -> None:
    try:
        check_segment(site, "site id")
        check_segment(device, "device id")
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


async def _command(client: OfficerClient, cas: list[x509.Certificate] | None, site: str, device: str,
                   command: str, args: dict[str, Any]) -> dict[str, Any]:
    _ids(site, device)
    try:
        reply, leaf = await asyncio.to_thread(client.request_signed, site, device, command, args, timeout=15.0)
    except AgentError as exc:
        raise HTTPException(502, f"{device}: {command}: {exc}") from None
    key = leaf.public_key()
    scheme = signature_scheme(key) if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
    checked = (f"reply to our nonce, {scheme} signature valid; "
               f"{chain_line(leaf, device, cas is not None)}")
    return {"ok": True, "verified": checked, "result": reply.get("result") or {}}


@router.post("/snapshot")
async def snapshot(site: str, device: str, client: Client, cas: DeviceCas) -> dict[str, Any]:
    """The device seals a still at the video's size (with C2PA where enabled) and names its record; a document at
    the full sensor is a check-in or snapshot of the inspection screen (``resolution: "full"``)."""
    return await _command(client, cas, site, device, "snapshot", {})


@router.post("/mark")
async def mark(site: str, device: str, body: MarkBody, client: Client, cas: DeviceCas) -> dict[str, Any]:
    """The note is sealed into the device's evidence chain at this moment."""
    return await _command(client, cas, site, device, "mark", {"note": body.note})


@router.post("/zoom")
async def zoom(site: str, device: str, body: ZoomArgs, client: Client, cas: DeviceCas) -> dict[str, Any]:
    """Zoom/pan the device's view while a live view runs (``{"cx", "cy", "factor"}`` or ``{"reset": true}``,
    checked here as the device checks it); the device seals the change and names the region it shows."""
    return await _command(client, cas, site, device, ZOOM_COMMAND, body.model_dump(exclude_none=True))

"""Fleet routes: the device table (``/api/devices``) and its live updates pushed to pages (``/ws/fleet``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect

from agent.customs.console.deps import Link, get_fleet
from agent.customs.console.fleet_state import FleetTracker, mark_old_trust
from agent.customs.console.search import OptionalIndex, index_devices

router = APIRouter(tags=["fleet"])


Fleet = Annotated[FleetTracker, Depends(get_fleet)]


@router.get("/api/devices")
def list_devices(fleet: Fleet, link: Link, index: OptionalIndex) -> dict[str, Any]:
    """Live state; ``index`` has the customs index's figures per device (None without ``[index]``)."""
    return {"devices": mark_old_trust(fleet.devices()), "connected": link.connected, "index": index_devices(index)}


@router.websocket("/ws/fleet")
async def fleet_updates(ws: WebSocket, fleet: Fleet) -> None:
    """Snapshot, then one message per change; the page never polls."""
    await ws.accept()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

    def push(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(_offer, queue, event)

    remove = fleet.add_listener(push)
    try:
        await ws.send_json({"t": "snapshot", "devices": fleet.devices()})
        while True:
            await ws.send_json(await queue.get())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        remove()


def _offer(queue: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    with contextlib.suppress(asyncio.QueueFull):  # a stalled page loses updates, not the server's memory
        queue.put_nowait(item)

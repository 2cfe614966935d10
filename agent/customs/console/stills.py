"""A stored still by device and record, for the search page's detail: found in the ingest's output folder by a
validated device id and sequence number, checked against the record hash the page asked for; never a client path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import FileResponse

from agent.core.vocab import ID_PATTERN
from agent.customs.console.deps import Evidence
from agent.customs.inspection import evidence as ev

router = APIRouter(tags=["stills"])


@router.get("/api/still/{device}/{seq}")
def stored_still(device: Annotated[str, Path(pattern=ID_PATTERN)], seq: Annotated[int, Path(ge=0, le=2**53)],
                 root: Evidence, item: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")]) -> FileResponse:
    """The picture of still ``seq`` of ``device`` when its record hash is ``item`` (JPEG or PNG as its signed
    record says; ``nosniff``); 404 naming why otherwise, 503 when no evidence folder is configured."""
    if root is None:
        raise HTTPException(503, "no evidence folder: set [inspections] evidence = INGEST_OUT in the console config")
    found = ev.load_items(ev.device_dir_of(root, device), seq, seq)
    if not found or found[0].record_hash != item or found[0].kind != "still":
        raise HTTPException(404, f"no still {device} #{seq} with that record hash has been received")
    media_type = (found[0].record.get("media") or {}).get("type")
    if found[0].media is None or media_type not in ev.IMAGE_TYPES:
        raise HTTPException(404, f"the picture of {device} #{seq} has not been received (or is not an image)")
    return FileResponse(found[0].media, media_type=str(media_type), headers={"X-Content-Type-Options": "nosniff"})

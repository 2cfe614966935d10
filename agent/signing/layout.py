"""How evidence items are named on disk: ``BBBBBB/SSSSSSSSSSSS.kind.ext`` plus a ``.rec`` sidecar.

Part of the evidence format (docs/evidence-format.md): the device's vault writes these names, and the
verifier, the anchor log and the customs store read them. Names sort by sequence number.
"""

from __future__ import annotations

import re

BUCKET = 10_000
SIDECAR_EXT = "rec"
ITEM_RE = re.compile(r"^(\d{12})\.([a-z][a-z0-9_-]*)\.([A-Za-z0-9]+)$")


def item_stem(seq: int, kind: str) -> str:
    return f"{seq:012d}.{kind}"


def bucket_of(seq: int) -> str:
    return f"{seq // BUCKET:06d}"

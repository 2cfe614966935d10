"""Where a camera's frames come from: a V4L2 device, a network stream or a file (no camera library here)."""

from __future__ import annotations

import re

from agent.core.errors import CaptureError

OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 10_000
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
_DEV = re.compile(r"^/dev/video(\d+)$")
HINTS = {
    "file": "FFmpeg cannot read it as video (corrupt, truncated or not a video file?)",
    "url": "stream unreachable, refused or not a video stream",
    "device": "no such V4L2 camera, busy, or no permission (is the user in group video?)",
}


def classify_source(source: str | int | None) -> tuple[str, str | int]:
    """("device", index) | ("url", url) | ("file", path) -- or CaptureError if unusable."""
    if source is None or source == "":
        raise CaptureError("a camera or file capture needs a source: device index, /dev/videoN, URL or file path")
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "device", int(source)
    m = _DEV.match(source)
    if m:
        return "device", int(m.group(1))
    if _URL.match(source):
        return "url", source
    return "file", source


def redact(source: str) -> str:
    """The source with any URL password hidden, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", source)

"""Media chunking: sizes from the broker's Maximum Packet Size, integrity in MQTT v5 user properties.

Each chunk names the item (record hash), the whole file's SHA-256 and size, its own index, offset
and SHA-256, and the chunk count, so a receiver can check every piece and the reassembled file
without trusting the transport (DESIGN-NOTES §4).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from paho.mqtt.packettypes import PacketTypes

from agent.wire.messages import make_properties, packet_size

MIN_CHUNK = 1024
# Room for the user properties below (hashes, names, numbers) and the topic, with margin.
PROPS_ALLOWANCE = 1024


@dataclass(frozen=True)
class MediaRef:
    """What the outbox knows about one media file to send."""

    item: str  # record hash
    seq: int
    kind: str
    name: str  # file name in the vault bucket
    sha256: str
    size: int
    content_type: str


def chunk_size_for(max_packet: int, topic: str, wanted: int) -> int:
    """Largest chunk payload <= ``wanted`` whose PUBLISH packet fits the broker's limit."""
    room = max_packet - PROPS_ALLOWANCE - len(topic.encode()) - 16
    size = min(wanted, room)
    if size < MIN_CHUNK:
        raise ValueError(f"broker maximum packet size {max_packet} leaves no room for media chunks")
    return size


def chunk_count(size: int, chunk: int) -> int:
    return max(1, math.ceil(size / chunk))


def chunk_props(ref: MediaRef, index: int, total: int, offset: int, data: bytes) -> list[tuple[str, str]]:
    return [
        ("item", ref.item), ("seq", str(ref.seq)), ("kind", ref.kind), ("name", ref.name),
        ("sha256", ref.sha256), ("size", str(ref.size)),
        ("index", str(index)), ("total", str(total)), ("offset", str(offset)),
        ("chunk", hashlib.sha256(data).hexdigest()),
    ]


def fits(topic: str, props: list[tuple[str, str]], payload_len: int, max_packet: int) -> bool:
    p = make_properties(PacketTypes.PUBLISH, user_props=props, content_type="application/octet-stream")
    return packet_size(topic, payload_len, p) <= max_packet


@dataclass(frozen=True)
class Chunk:
    """A received chunk, parsed and checked against its own hash."""

    item: str
    seq: int
    kind: str
    name: str
    sha256: str
    size: int
    index: int
    total: int
    offset: int
    data: bytes


def parse_chunk(props: dict[str, str], data: bytes) -> Chunk:
    """Check one chunk's user properties and hash; ValueError names the first problem."""
    try:
        chunk = Chunk(item=props["item"], seq=int(props["seq"]), kind=props["kind"], name=props["name"],
                      sha256=props["sha256"], size=int(props["size"]), index=int(props["index"]),
                      total=int(props["total"]), offset=int(props["offset"]), data=data)
        claimed = props["chunk"]
    except KeyError as exc:
        raise ValueError(f"media chunk lacks user property {exc.args[0]!r}") from exc
    except ValueError as exc:
        raise ValueError(f"media chunk has a non-numeric property: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != claimed:
        raise ValueError(f"chunk {chunk.index} of item {chunk.item[:12]} does not match its SHA-256")
    if not (0 <= chunk.index < chunk.total) or chunk.offset < 0 or chunk.offset + len(data) > chunk.size:
        raise ValueError(f"chunk {chunk.index}/{chunk.total} at {chunk.offset} does not fit a "
                         f"{chunk.size}-byte file")
    for name, value in (("item", chunk.item), ("sha256", chunk.sha256)):
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError(f"media chunk property {name!r} is not a SHA-256 hex digest")
    return chunk


def props_dict(pairs: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in pairs}

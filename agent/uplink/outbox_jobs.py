"""What flows into the outbox's dispatcher thread: small frozen values on two typed queues.

Producers (the Sealer listener, anchoring, an operator's retry) put a :data:`Job`; paho's callback puts
an :class:`Ack`. Neither waits on the disk: only the dispatcher turns them into store writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.core.model import SealedItem
from agent.wire.mqtt import PublishResult


@dataclass(frozen=True)
class Message:
    """A small message (e.g. an anchor receipt) for a device channel."""

    channel: str
    payload: bytes
    priority: int
    props: tuple[tuple[str, str], ...]
    content_type: str


@dataclass(frozen=True)
class RetryRejected:
    """An operator asked to send the rejected entries again."""


Job = SealedItem | Message | RetryRejected


@dataclass(frozen=True)
class Ack:
    """The broker's answer to chunk ``idx`` of an entry cut at ``gen`` bytes (0: sent whole)."""

    entry_id: int
    idx: int
    gen: int
    result: PublishResult


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    pending_bytes: int
    rejected: int
    in_flight: int
    delivered: int
    oldest_age_s: float | None
    last_sealed: dict[str, Any] | None

"""The conversation as evidence: Opus packets of one direction of one session, sealed as Ogg/Opus ``audio`` items.

Each item holds at most ``segment_seconds`` of audio; its record starts at the capture time of its first
sample and ends at the capture time after its last, so the case timeline places it where it was spoken.
The extra names the session, officer, direction, packet count, duration and the SHA-256 of every signed
message that carried its packets (what the officer received can be matched to what was sealed).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from agent.audio.base import SAMPLE_RATE
from agent.audio.opus import OggOpusWriter
from agent.core.model import Moment, SealedItem
from agent.core.vocab import AUDIO_EXT, AUDIO_MEDIA_TYPE

log = logging.getLogger(__name__)


class SegmentRecorder:
    """Collects packets (with the capture time of their first sample) and seals a file per segment."""

    def __init__(self, *, direction: str, extradata: bytes, segment_seconds: float, frame_ms: int,
                 seal: Callable[..., SealedItem] | None, moment: Callable[[], Moment],
                 extra: dict[str, Any]) -> None:
        self.direction, self.extradata, self.frame_ms = direction, extradata, frame_ms
        self.segment_samples = int(segment_seconds * SAMPLE_RATE)
        self.seal_fn, self.moment, self.base_extra = seal, moment, extra
        self._writer: OggOpusWriter | None = None
        self._first: tuple[int, int] | None = None  # (wall_ns, mono_ns) of the segment's first sample
        self._messages: list[str] = []
        self.sealed: list[SealedItem] = []
        self.failed = 0

    def add(self, packet: bytes, wall_ns: int, mono_ns: int) -> None:
        samples = SAMPLE_RATE * self.frame_ms // 1000
        if self._writer is None:
            self._writer = OggOpusWriter(self.extradata)
            self._first = (wall_ns, mono_ns)
        self._writer.add(packet, samples)

    @property
    def full(self) -> bool:
        """The open segment is long enough: the caller flushes it after the message that carried its packets."""
        return self._writer is not None and self._writer.samples >= self.segment_samples

    def message_sent(self, message_sha256: str) -> None:
        """A signed message carried packets of the open segment."""
        self._messages.append(message_sha256)

    def flush(self, reason: str) -> SealedItem | None:
        """Seal the open segment (if any) and start a new one at the next packet."""
        writer, first = self._writer, self._first
        messages, self._messages = self._messages, []
        self._writer, self._first = None, None
        if writer is None or first is None or self.seal_fn is None:
            return None
        data = writer.finish()
        duration_ns = writer.samples * 1_000_000_000 // SAMPLE_RATE
        now = self.moment()
        start = dataclasses.replace(now, wall_ns=first[0], mono_ns=first[1])
        end = dataclasses.replace(now, wall_ns=first[0] + duration_ns, mono_ns=first[1] + duration_ns)
        extra = {**self.base_extra, "direction": self.direction, "codec": "opus", "container": "ogg",
                 "sample_rate": SAMPLE_RATE, "channels": 1, "frame_ms": self.frame_ms, "packets": writer.packets,
                 "duration_ms": duration_ns // 1_000_000, "segment": len(self.sealed), "closed_by": reason,
                 "message_sha256": messages}
        try:
            item = self.seal_fn("audio", start, media=data, media_type=AUDIO_MEDIA_TYPE, ext=AUDIO_EXT, end=end,
                                extra=extra)
        except Exception:  # logged loudly; the conversation goes on
            self.failed += 1
            log.exception("could not seal %s audio of session %s", self.direction, self.base_extra.get("session"))
            return None
        self.sealed.append(item)
        return item

"""What every anchor (TSA, customs ledger, other platforms) looks like to the anchorer and verifier."""

from __future__ import annotations

import abc
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from agent.anchor.note import Checkpoint
from agent.core.errors import UplinkError


@dataclass(frozen=True)
class AnchorReceipt:
    """Proof from one anchor that a checkpoint note existed no later than ``time_ns``."""

    anchor: str  # "tsa", "ledger", or an adapter's name
    checkpoint_size: int
    note_sha256: str  # hex SHA-256 of the signed note bytes that were anchored
    time_ns: int
    data: dict[str, Any] = field(default_factory=dict)  # JSON: token, receipt ids, proofs

    def to_json(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "checkpoint_size": self.checkpoint_size, "note_sha256": self.note_sha256,
                "time_us": self.time_ns // 1000, "data": self.data}  # ns would exceed JSON's safe integers

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AnchorReceipt:
        return cls(str(d["anchor"]), int(d["checkpoint_size"]), str(d["note_sha256"]), int(d["time_us"]) * 1000,
                   dict(d.get("data") or {}))


class Anchor(abc.ABC):
    """Submits a signed checkpoint note somewhere that dates it; raises UplinkError when it did not work."""

    name: str = "anchor"

    @abc.abstractmethod
    def submit(self, note: bytes, checkpoint: Checkpoint) -> AnchorReceipt: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def http_request(method: str, url: str, body: bytes | None, *, timeout_s: float,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One HTTP exchange with the standard library (no extra dependency); network trouble -> UplinkError."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read() or b"")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise UplinkError(f"{method} {url} failed: {exc}") from exc

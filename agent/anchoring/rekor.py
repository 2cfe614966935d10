"""Rekor v2 anchor: log each checkpoint note in a Sigstore Rekor v2 transparency log (rekor-tiles).

``POST <url>/api/v2/log/entries`` with a CreateEntryRequest (hashedrekord v0.0.2: SHA-256 of the note file and
the device key's ECDSA P-256 signature over it). Rekor answers once a checkpoint that includes the entry is
published, with a TransparencyLogEntry: the receipt kept in ``log/anchors/<size>-rekor.json`` after the same
checks ``verify`` makes (agent.anchor.rekor.check_entry). Rekor v2 vouches for no time (its
``integrated_time`` is 0); ``time_us`` of the receipt is the device's clock when the answer came and
``verify`` does not use it — the TSA dates the note.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from agent.anchor.base import Anchor, AnchorReceipt, http_request
from agent.anchor.merkle import verify_consistency
from agent.anchor.note import Checkpoint, NoteVerifier
from agent.anchor.rekor import RekorProof, check_entry, create_entry_request
from agent.anchor.tiles import TileReader
from agent.core.errors import UplinkError, VerificationError

ENTRIES_PATH = "/api/v2/log/entries"
log = logging.getLogger(__name__)


class RekorAnchor(Anchor):
    """Client of one Rekor v2 log; ``sign`` is the device key's ECDSA/SHA-256 signing function."""

    name = "rekor"

    def __init__(self, base_url: str, *, device_key: ec.EllipticCurvePublicKey, sign: Callable[[bytes], bytes],
                 log_keys: list[NoteVerifier], timeout_s: float = 30.0, tiles_url: str | None = None,
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.base_url = base_url.rstrip("/")
        self.tiles_url = None if tiles_url is None else tiles_url.rstrip("/")
        self._last: RekorProof | None = None  # the newest log checkpoint this device holds a receipt for
        self.device_key = device_key
        self.sign = sign
        self.log_keys = log_keys
        self.timeout_s = timeout_s
        self.wall_ns = wall_ns

    def prime(self, receipts: Iterable[AnchorReceipt], notes: Callable[[str], bytes | None]) -> None:
        """Remember the newest log checkpoint of the stored receipts (the next receipt proves consistency to it)."""
        for r in receipts:
            note = notes(r.note_sha256) if r.anchor == self.name else None
            if note is None:
                continue
            try:
                p = check_entry(r.data.get("transparency_log_entry"), note, self.device_key, self.log_keys)
            except VerificationError:
                continue
            if self._last is None or p.checkpoint.size > self._last.checkpoint.size:
                self._last = p

    def _get_tile(self, path: str) -> bytes:
        url = f"{self.tiles_url}/{path}"
        status, content = http_request("GET", url, None, timeout_s=self.timeout_s)
        if status == 404:
            raise KeyError(path)
        if status != 200:
            raise UplinkError(f"Rekor tiles {url} answered HTTP {status}")
        return content

    def consistency(self, old: RekorProof, new: RekorProof) -> dict[str, Any]:
        """RFC 9162 proof that ``new``'s tree extends ``old``'s, computed from the log's tiles and checked."""
        a, b = old.checkpoint, new.checkpoint
        proof = TileReader(self._get_tile, b.size).consistency_proof(a.size)
        out: dict[str, Any] = {"from_checkpoint": old.checkpoint_note,
                               "proof": [base64.b64encode(h).decode() for h in proof]}
        try:
            verify_consistency(a.size, b.size, proof, a.root, b.root)
        except VerificationError as exc:
            log.error("Rekor log %s is not consistent between sizes %d and %d: %s", b.origin, a.size, b.size, exc)
            out["error"] = str(exc)
        return out

    def post_entry(self, note: bytes) -> bytes:
        """One bare submission: sign, POST, return Rekor's answer (raises UplinkError unless HTTP 201)."""
        body = json.dumps(create_entry_request(note, self.sign(note), self.device_key)).encode()
        url = self.base_url + ENTRIES_PATH
        status, content = http_request("POST", url, body, timeout_s=self.timeout_s,
                                       headers={"Content-Type": "application/json", "Accept": "application/json"})
        if status not in (200, 201):
            raise UplinkError(f"Rekor {url} answered HTTP {status}: {content[:200]!r}")
        return content

    def submit(self, note: bytes, checkpoint: Checkpoint) -> AnchorReceipt:
        content = self.post_entry(note)
        try:
            tle = json.loads(content)
            proof = check_entry(tle, note, self.device_key, self.log_keys)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UplinkError(f"Rekor {self.base_url} sent malformed JSON: {exc}") from exc
        except VerificationError as exc:
            raise UplinkError(f"Rekor {self.base_url}: {exc}") from exc
        data: dict[str, Any] = {"url": self.base_url, "log_index": proof.log_index,
                                "log_origin": proof.checkpoint.origin, "log_size": proof.checkpoint.size,
                                "time_source": "device clock (Rekor v2 vouches for no time)",
                                "transparency_log_entry": tle}
        old = self._last
        if self.tiles_url and old is not None and old.checkpoint.size < proof.checkpoint.size:
            try:
                data["consistency"] = self.consistency(old, proof)
            except (UplinkError, VerificationError) as exc:  # the receipt stands; the next one tries again
                log.warning("Rekor consistency proof %d -> %d not fetched: %s", old.checkpoint.size,
                            proof.checkpoint.size, exc)
        if old is None or proof.checkpoint.size > old.checkpoint.size:
            self._last = proof
        return AnchorReceipt(anchor=self.name, checkpoint_size=checkpoint.size,
                             note_sha256=hashlib.sha256(note).hexdigest(), time_ns=self.wall_ns(), data=data)

"""Client of the customs evidence-storage API (docs/openapi-evidence-storage.yaml).

The device submits each checkpoint (optionally single item hashes, SHA-256 or SM3) and keeps the receipt.
A receipt is only accepted when it names the hash that was sent; a ledger inclusion proof, when present, is
checked against the ledger's signed checkpoint if its key is configured.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes

from agent.anchor.base import Anchor, AnchorReceipt, http_request
from agent.anchor.merkle import leaf_hash, verify_inclusion
from agent.anchor.note import Checkpoint, NoteVerifier, open_checkpoint
from agent.core.errors import UplinkError, VerificationError

PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def digest(alg: str, data: bytes) -> bytes:
    if alg == "sha256":
        return hashlib.sha256(data).digest()
    if alg == "sm3":
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()
    raise ValueError(f"unsupported hash algorithm {alg!r}")


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None


def parse_tlog_proof(text: str) -> TlogProof:
    """c2sp.org/tlog-proof@v1: header, optional extra, index, proof hashes, blank line, checkpoint note."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise VerificationError("tlog-proof: no blank line before the checkpoint")
    lines = head.split("\n")
    if not lines or lines[0] != PROOF_HEADER:
        raise VerificationError("tlog-proof: wrong or missing header line")
    pos, extra = 1, None
    try:
        if pos < len(lines) and lines[pos].startswith("extra "):
            extra = base64.b64decode(lines[pos][6:], validate=True)
            pos += 1
        if pos >= len(lines) or not lines[pos].startswith("index "):
            raise VerificationError("tlog-proof: missing index line")
        idx_s = lines[pos][6:]
        if not idx_s.isdigit() or (idx_s != "0" and idx_s.startswith("0")):
            raise VerificationError(f"tlog-proof: bad index {idx_s!r}")
        proof = tuple(base64.b64decode(p, validate=True) for p in lines[pos + 1 :])
    except binascii.Error as exc:
        raise VerificationError("tlog-proof: bad base64") from exc
    return TlogProof(int(idx_s), proof, note, extra)


def format_tlog_proof(index: int, proof: Sequence[bytes], checkpoint_note: str) -> str:
    hashes_ = "".join(base64.b64encode(p).decode() + "\n" for p in proof)
    return f"{PROOF_HEADER}\nindex {index}\n{hashes_}\n{checkpoint_note}"


def verify_ledger_proof(text: str, subject: bytes, ledger: Sequence[NoteVerifier]) -> Checkpoint:
    """Check that ``subject`` (a raw digest) is entry ``index`` of the ledger's signed checkpoint."""
    p = parse_tlog_proof(text)
    cp = open_checkpoint(p.checkpoint_note, ledger)
    verify_inclusion(leaf_hash(subject), p.index, cp.size, p.proof, cp.root)
    return cp


def parse_time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("time is not a string")
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("time has no zone")
    return t.astimezone(dt.UTC)


def check_receipt(receipt: Any, hash_alg: str, subject: bytes,
                  ledger: Sequence[NoteVerifier] = ()) -> dt.datetime:
    """Validate a receipt's shape and subject; returns its time. Raises VerificationError naming the fault."""
    if not isinstance(receipt, dict):
        raise VerificationError("ledger receipt is not a JSON object")
    for key in ("certificate_id", "ledger_tx_id", "time", "subject"):
        if key not in receipt:
            raise VerificationError(f"ledger receipt lacks {key!r}")
    if not isinstance(receipt["certificate_id"], str) or not isinstance(receipt["ledger_tx_id"], str):
        raise VerificationError("ledger receipt ids are not strings")
    try:
        when = parse_time(receipt["time"])
    except ValueError as exc:
        raise VerificationError(f"ledger receipt time unreadable: {exc}") from exc
    subj = receipt["subject"]
    if not isinstance(subj, dict) or subj.get("hash_alg") != hash_alg or subj.get("hash") != subject.hex():
        raise VerificationError("ledger receipt is for a different hash than the one submitted")
    proof = receipt.get("proof")
    if proof is not None and ledger:
        if not isinstance(proof, str):
            raise VerificationError("ledger receipt proof is not text")
        verify_ledger_proof(proof, subject, ledger)
    return when


class LedgerAnchor(Anchor):
    """Customs evidence-storage platform client."""

    name = "ledger"

    def __init__(self, base_url: str, device_id: str, *, api_token: str | None = None, timeout_s: float = 10.0,
                 hash_alg: str = "sha256", ledger_keys: Sequence[NoteVerifier] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.timeout_s = timeout_s
        self.hash_alg = hash_alg
        self.ledger_keys = list(ledger_keys)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_token:
            self._headers["Authorization"] = f"Bearer {api_token}"

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = self.base_url + path
        status, content = http_request("POST", url, json.dumps(body).encode(), timeout_s=self.timeout_s,
                                       headers=self._headers)
        if status != 201:
            raise UplinkError(f"ledger {url} answered HTTP {status}: {content[:200]!r}")
        try:
            return json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UplinkError(f"ledger {url} sent malformed JSON: {exc}") from exc

    def _receipt(self, reply: Any, alg: str, subject: bytes, size: int) -> AnchorReceipt:
        try:
            when = check_receipt(reply, alg, subject, self.ledger_keys)
        except VerificationError as exc:
            raise UplinkError(f"ledger {self.base_url}: {exc}") from exc
        return AnchorReceipt(anchor=self.name, checkpoint_size=size, note_sha256=subject.hex() if alg == "sha256"
                             else "", time_ns=int(when.timestamp() * 1e6) * 1000,
                             data={"url": self.base_url, "receipt": reply})

    def submit(self, note: bytes, checkpoint: Checkpoint) -> AnchorReceipt:
        note_hash = hashlib.sha256(note).digest()
        reply = self._post("/v1/checkpoints", {
            "device_id": self.device_id, "origin": checkpoint.origin, "tree_size": checkpoint.size,
            "root_hash": base64.b64encode(checkpoint.root).decode(), "note": note.decode("utf-8"),
            "note_sha256": note_hash.hex()})
        return self._receipt(reply, "sha256", note_hash, checkpoint.size)

    def submit_item(self, seq: int, record: bytes) -> AnchorReceipt:
        """Anchor one record's hash (platforms that certify single files; SM3 where required)."""
        subject = digest(self.hash_alg, record)
        reply = self._post("/v1/evidence", {"device_id": self.device_id, "seq": seq, "hash_alg": self.hash_alg,
                                            "hash": subject.hex()})
        r = self._receipt(reply, self.hash_alg, subject, 0)
        return AnchorReceipt(r.anchor, 0, hashlib.sha256(record).hexdigest(), r.time_ns,
                             {**r.data, "seq": seq, "hash_alg": self.hash_alg})

    def latest(self) -> tuple[str, dict[str, Any]] | None:
        """The newest checkpoint the platform holds for this device, or None."""
        url = f"{self.base_url}/v1/devices/{self.device_id}/checkpoints/latest"
        status, content = http_request("GET", url, None, timeout_s=self.timeout_s, headers=self._headers)
        if status == 404:
            return None
        if status != 200:
            raise UplinkError(f"ledger {url} answered HTTP {status}")
        try:
            d = json.loads(content)
            return str(d["note"]), dict(d["receipt"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UplinkError(f"ledger {url} sent a malformed reply: {exc}") from exc

"""Rekor v2 receipts: the hashedrekord v0.0.2 entry of a checkpoint note, and the offline checks of its proof.

The device logs each checkpoint note in a Rekor v2 transparency log as a ``hashedrekord`` v0.0.2 entry: the
SHA-256 digest of the note file and the device key's ECDSA P-256 signature over it. Rekor answers with a
``TransparencyLogEntry`` (sigstore protobuf-specs; JSON via sigstore-models): the canonicalized entry body, its
log index and an inclusion proof up to Rekor's C2SP signed checkpoint. ``check_entry`` checks, without the
network, that the entry names this note and this device key, that its signature verifies, that the proof
leads to the checkpoint's root (RFC 9162 leaf = SHA-256(0x00 || canonicalized body)) and, given the log's
key, that the checkpoint is signed by the log.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import ValidationError
from sigstore_models.common.v1 import HashAlgorithm, PublicKeyDetails
from sigstore_models.rekor.v1 import TransparencyLogEntry
from sigstore_models.rekor.v2 import entry as rekor_entry
from sigstore_models.rekor.v2 import hashedrekord, verifier

from agent.anchor.merkle import leaf_hash, verify_inclusion
from agent.anchor.note import (
    SIG_ED25519,
    Checkpoint,
    NoteVerifier,
    ecdsa_verifier,
    ecdsa_verifier_key,
    ed25519_key_id,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
)
from agent.core.errors import VerificationError

ENTRY_KIND = "hashedrekord"
ENTRY_VERSION = "0.0.2"


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def create_entry_request(note: bytes, signature: bytes, device_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The JSON body of ``POST /api/v2/log/entries`` for one note (CreateEntryRequest, hashedrekord v0.0.2)."""
    def b64(b: bytes) -> bytes:  # sigstore-models' ProtoBytes validator takes the base64 form
        return base64.b64encode(b)

    req = rekor_entry.CreateEntryRequest(hashed_rekord_request_v002=hashedrekord.HashedRekordRequestV002(
        digest=b64(hashlib.sha256(note).digest()),
        signature=verifier.Signature(content=b64(signature), verifier=verifier.Verifier(
            public_key=verifier.PublicKey(raw_bytes=b64(spki_der(device_key))),
            key_details=PublicKeyDetails.PKIX_ECDSA_P256_SHA_256))))
    return req.to_dict()


def log_verifier(origin: str, public_key_pem: bytes) -> NoteVerifier:
    """The Rekor log's checkpoint key (Ed25519 or ECDSA PEM) as a signed-note verifier named ``origin``."""
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise VerificationError(f"Rekor public key is not a PEM public key: {exc}") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ecdsa_verifier(origin, key)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

        def check(msg: bytes, sig: bytes) -> bool:
            try:
                key.verify(sig, msg)  # type: ignore[union-attr]
            except InvalidSignature:
                return False
            return True

        return NoteVerifier(origin, ed25519_key_id(origin, raw), check)
    raise VerificationError("Rekor public key must be Ed25519 or ECDSA")


def log_verifier_key(origin: str, public_key_pem: bytes) -> str:
    """The ``<origin>+<key ID>+<base64>`` verifier-key string for ``verify --ledger-key`` (Ed25519 or ECDSA)."""
    key = serialization.load_pem_public_key(public_key_pem)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        b64 = base64.b64encode(bytes([SIG_ED25519]) + raw).decode()
        return f"{origin}+{ed25519_key_id(origin, raw):08x}+{b64}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ecdsa_verifier_key(origin, key)
    raise VerificationError("Rekor public key must be Ed25519 or ECDSA")


@dataclass(frozen=True)
class RekorProof:
    """What a checked entry proves: the note is leaf ``log_index`` of the log whose checkpoint is ``checkpoint``."""

    log_index: int
    checkpoint: Checkpoint
    checkpoint_note: str
    log_signed: bool  # the checkpoint's signature was checked with a trusted log key


def _entry(tle: Any) -> TransparencyLogEntry:
    if not isinstance(tle, dict):
        raise VerificationError("Rekor entry is not a JSON object")
    try:
        return TransparencyLogEntry.from_json(json.dumps(tle))  # JSON mode: enums and bytes as text
    except ValidationError as exc:
        raise VerificationError(f"Rekor entry malformed: {exc.errors()[0].get('msg', exc)}") from exc


def _check_body(body: bytes, note: bytes, device_key: ec.EllipticCurvePublicKey | None) -> None:
    try:
        ent = rekor_entry.Entry.from_json(body)  # JSON mode: enums as their names
    except (ValueError, ValidationError) as exc:
        raise VerificationError("Rekor entry body is not a hashedrekord entry") from exc
    spec = ent.spec.hashed_rekord_v002
    if ent.kind != ENTRY_KIND or ent.api_version != ENTRY_VERSION or spec is None:
        raise VerificationError(f"Rekor entry is {ent.kind} {ent.api_version}, expected {ENTRY_KIND} {ENTRY_VERSION}")
    if spec.data.algorithm != HashAlgorithm.SHA2_256 or spec.data.digest != hashlib.sha256(note).digest():
        raise VerificationError("Rekor entry is for a different hash than this checkpoint note")
    pk = spec.signature.verifier.public_key
    if pk is None or spec.signature.verifier.key_details != PublicKeyDetails.PKIX_ECDSA_P256_SHA_256:
        raise VerificationError("Rekor entry is not signed with an ECDSA P-256 public key")
    if device_key is not None:
        if pk.raw_bytes != spki_der(device_key):
            raise VerificationError("Rekor entry is signed by another key than the device's")
        try:
            device_key.verify(spec.signature.content, note, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise VerificationError("Rekor entry signature does not verify over the checkpoint note") from exc


def checkpoint_signers(tle: Any) -> set[str]:
    """Names on the signature lines of the checkpoint a stored entry carries (empty when unreadable)."""
    try:
        envelope = tle["inclusionProof"]["checkpoint"]["envelope"]
        return {s.name for s in parse_note(str(envelope)).sigs}
    except (KeyError, TypeError, VerificationError):
        return set()


def check_entry(tle: Any, note: bytes, device_key: ec.EllipticCurvePublicKey | None,
                log_keys: Sequence[NoteVerifier] = ()) -> RekorProof:
    """Check a stored TransparencyLogEntry (JSON dict) for ``note``; raises VerificationError naming the fault.

    Without ``log_keys`` the inclusion proof is still checked against the checkpoint it carries, but that
    checkpoint is not known to come from the log (``log_signed`` False): say so to the user.
    """
    e = _entry(tle)
    if (e.kind_version.kind, e.kind_version.version) != (ENTRY_KIND, ENTRY_VERSION):
        raise VerificationError(f"Rekor entry kind {e.kind_version.kind} {e.kind_version.version} not supported")
    _check_body(e.canonicalized_body, note, device_key)
    proof = e.inclusion_proof
    if proof.checkpoint is None:
        raise VerificationError("Rekor entry has no signed checkpoint")
    envelope = proof.checkpoint.envelope
    try:
        if log_keys:
            cp = open_checkpoint(envelope, log_keys)
            if cp.origin not in {s.name for s in parse_note(envelope).sigs}:
                raise VerificationError(f"Rekor checkpoint origin {cp.origin!r} is not the name of its signer")
        else:
            cp = parse_checkpoint(parse_note(envelope).text)
    except VerificationError as exc:
        raise VerificationError(f"Rekor checkpoint: {exc}") from exc
    if proof.tree_size != cp.size or proof.root_hash != cp.root:
        raise VerificationError("Rekor inclusion proof names another tree than its checkpoint")
    if proof.log_index != e.log_index:
        raise VerificationError("Rekor inclusion proof names another index than its entry")
    try:
        verify_inclusion(leaf_hash(e.canonicalized_body), e.log_index, cp.size, proof.hashes, cp.root)
    except VerificationError as exc:
        raise VerificationError(f"Rekor inclusion proof fails: {exc}") from exc
    return RekorProof(e.log_index, cp, envelope, bool(log_keys))

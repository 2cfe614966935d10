"""A Sigstore ``TrustedRoot`` file (protobuf-specs, JSON) as verifier trust: its Rekor logs and its TSAs.

The file customs hands to enterprises, auditors and courts once: each ``tlogs`` entry gives a log's base URL
(its checkpoint origin is that URL without the scheme, as Rekor v2 names itself) and public key; each
``timestampAuthorities`` entry gives a TSA's certificate chain. ``make_trusted_root`` writes one for a
log and a TSA this project runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import ValidationError
from sigstore_models.trustroot.v1 import TrustedRoot

from agent.anchor.note import NoteVerifier
from agent.anchor.rekor import log_verifier
from agent.core.errors import ConfigError, VerificationError

MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


@dataclass(frozen=True)
class RootTrust:
    log_keys: tuple[NoteVerifier, ...]
    tsa_certs: tuple[x509.Certificate, ...]


def origin_of(base_url: str) -> str:
    """Rekor v2's checkpoint origin for a log URL: the URL without its scheme (and without a trailing slash)."""
    u = urlsplit(base_url)
    return (u.netloc + u.path).rstrip("/") if u.scheme else base_url.rstrip("/")


def load_trusted_root(path: Path) -> RootTrust:
    """Read ``path``; every error names the file and what is wrong (ConfigError)."""
    try:
        root = TrustedRoot.from_json(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"--trust-root {path}: cannot read it: {exc.strerror}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        raise ConfigError(f"--trust-root {path}: not a Sigstore trusted root: {where}: {err.get('msg')}") from None
    keys: list[NoteVerifier] = []
    for i, log in enumerate(root.tlogs):
        try:
            key = serialization.load_der_public_key(log.public_key.raw_bytes or b"")
            pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            keys.append(log_verifier(origin_of(log.base_url), pem))
        except (ValueError, VerificationError) as exc:
            raise ConfigError(f"--trust-root {path}: tlogs[{i}] ({log.base_url}): unusable public key: {exc}") from None
    certs: list[x509.Certificate] = []
    for i, tsa in enumerate(root.timestamp_authorities):
        for c in tsa.cert_chain.certificates:
            try:
                certs.append(x509.load_der_x509_certificate(c.raw_bytes))
            except ValueError as exc:
                raise ConfigError(f"--trust-root {path}: timestampAuthorities[{i}]: bad certificate: {exc}") from None
    return RootTrust(tuple(keys), tuple(certs))


def make_trusted_root(log_url: str, log_public_key_pem: bytes, tsa_chain: Sequence[x509.Certificate] = (),
                      *, operator: str = "customs") -> dict[str, object]:
    """A TrustedRoot (JSON dict) for one Rekor v2 log and optionally one TSA (chain: leaf first or not)."""
    key = serialization.load_pem_public_key(log_public_key_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(key, ed25519.Ed25519PublicKey):
        details, key_id = "PKIX_ED25519", hashlib.sha256(origin_of(log_url).encode() + b"\n\x01" + key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).digest()
    elif isinstance(key, ec.EllipticCurvePublicKey):
        details, key_id = "PKIX_ECDSA_P256_SHA_256", hashlib.sha256(der).digest()
    else:
        raise VerificationError("log key must be Ed25519 or ECDSA P-256")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out: dict[str, object] = {
        "mediaType": MEDIA_TYPE, "certificateAuthorities": [], "ctlogs": [],
        "tlogs": [{"baseUrl": log_url, "hashAlgorithm": "SHA2_256",
                   "publicKey": {"rawBytes": b64(der), "keyDetails": details, "validFor": {"start": now}},
                   "logId": {"keyId": b64(key_id)}, "checkpointKeyId": {"keyId": b64(key_id)},
                   "operator": operator}]}
    if tsa_chain:
        leaf = tsa_chain[0]
        cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        org = leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
        out["timestampAuthorities"] = [{
            "subject": {"organization": str(org[0].value) if org else "", "commonName": str(cn[0].value) if cn else ""},
            "certChain": {"certificates": [{"rawBytes": b64(c.public_bytes(serialization.Encoding.DER))}
                                           for c in tsa_chain]},
            "validFor": {"start": now}, "operator": operator}]
    return out

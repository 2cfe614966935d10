"""Certificate chains checked once per verification run, not once per record.

Every record's envelope carries its chain (leaf + intermediates). A run parses each distinct certificate once
and builds each distinct chain once (agent.signing.trust.verify_chain, at the first record's time); the cached
result then holds for another record of the same chain and device whose time lies inside every validity period
of the path that was built -- the only input of path validation that changes from record to record. A record
outside that window gets a full check at its own time. Failures are not cached (each record names its own).
Revocation is checked per record by agent.signing.revoked_items against the same parsed certificates.

The caches are bounded (hostile evidence may carry a new chain in every record): past ``MAX_ENTRIES`` distinct
certificates or chains, further ones are checked without being kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.signing.keys import key_id_of
from agent.signing.trust import TrustedChain, verify_chain

__all__ = ["MAX_ENTRIES", "ChainCache", "Signer"]

MAX_ENTRIES = 1024


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class Signer:
    """A leaf certificate's public key and its key id (hex SHA-256 of the SubjectPublicKeyInfo; "" when the
    key is not ECDSA P-256, the only kind a record may be signed with)."""

    key: object
    key_id: str

    def verify(self, signature: bytes, data: bytes) -> None:
        """ECDSA P-256/SHA-256 (DER signature); VerificationError when it does not hold or the key is no P-256 key."""
        if not self.key_id:
            raise VerificationError("key is not ECDSA P-256")
        try:
            self.key.verify(signature, data, _ECDSA_SHA256)  # type: ignore[attr-defined]
        except InvalidSignature:
            raise VerificationError("signature is invalid (data altered or signed by another key)") from None


@dataclass(frozen=True)
class _Verified:
    result: TrustedChain
    not_before: dt.datetime  # the latest notBefore along the path
    not_after: dt.datetime  # the earliest notAfter along the path

    @cached_property
    def window_us(self) -> tuple[int, int]:
        """The window in microseconds since the epoch (exact integers: certificate times are whole seconds)."""
        return (self.not_before - _EPOCH) // _US, (self.not_after - _EPOCH) // _US


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


class ChainCache:
    """Parsed certificates by DER, signers by leaf DER, verified chains by the exact leaf+intermediates DER."""

    def __init__(self, anchors: Sequence[x509.Certificate]) -> None:
        self.anchors = list(anchors)
        self._certs: dict[bytes, x509.Certificate] = {}
        self._signers: dict[bytes, Signer] = {}
        self._chains: dict[tuple[bytes, ...], _Verified] = {}
        self.built = 0  # full path validations run (for tests and the benchmark)

    def certificates(self, x5c: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
        """The envelope's certificates; ValueError for one that does not parse."""
        out = []
        for der in x5c:
            cert = self._certs.get(der)
            if cert is None:
                cert = x509.load_der_x509_certificate(der)
                if len(self._certs) < MAX_ENTRIES:
                    self._certs[der] = cert
            out.append(cert)
        return tuple(out)

    def signer(self, leaf_der: bytes, leaf: x509.Certificate) -> Signer:
        """The leaf's key; ValueError/UnsupportedAlgorithm for an unreadable one."""
        found = self._signers.get(leaf_der)
        if found is None:
            key = leaf.public_key()
            p256 = isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
            found = Signer(key, key_id_of(key) if p256 else "")  # type: ignore[arg-type]
            if len(self._signers) < MAX_ENTRIES:
                self._signers[leaf_der] = found
        return found

    def reuse(self, x5c: tuple[bytes, ...], wall_us: int, device: str) -> TrustedChain | None:
        """The earlier result for this exact chain and device when ``wall_us`` (a capture time in microseconds
        since the epoch) lies strictly inside its window -- no datetime made; None means: call ``verify``."""
        hit = self._chains.get(x5c)
        if hit is None or hit.result.device_id != device:
            return None
        after, before = hit.window_us
        return hit.result if after < wall_us < before else None

    def verify(self, x5c: tuple[bytes, ...], certs: Sequence[x509.Certificate], *, at: dt.datetime,
               device: str) -> TrustedChain:
        """What ``verify_chain(certs, anchors, at=at, device=device)`` returns, or raises, reusing earlier work."""
        hit = self._chains.get(x5c)
        if hit is not None:
            if hit.result.device_id != device:
                raise VerificationError(f"certificate is for {hit.result.device_id!r}, not {device!r} "
                                        "(identity is the subject CN)")
            if hit.not_before <= at <= hit.not_after:
                return hit.result
        self.built += 1
        result = verify_chain(certs, self.anchors, at=at, device=device)
        if hit is None and len(self._chains) < MAX_ENTRIES:
            try:
                window = (max(c.not_valid_before_utc for c in result.chain),
                          min(c.not_valid_after_utc for c in result.chain))
            except ValueError:  # an unreadable validity: never reuse
                return result
            self._chains[x5c] = _Verified(result, *window)
        return result

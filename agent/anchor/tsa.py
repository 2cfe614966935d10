"""RFC 3161 anchor: time-stamp a checkpoint's signed note so the signature itself is dated.

Requests use SHA-256 and a nonce and ask for the TSA certificate; the response is checked (status, nonce,
imprint) before it is kept. Verification checks the TSA chain at the token's time and the critical
timeStamping EKU (rfc3161-client does both).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import rfc3161_client as tsp
from cryptography import x509

from agent.anchor.base import Anchor, AnchorReceipt, http_request
from agent.anchor.note import Checkpoint
from agent.core.errors import UplinkError, VerificationError

CONTENT_TYPE_QUERY = "application/timestamp-query"
CONTENT_TYPE_REPLY = "application/timestamp-reply"


@dataclass(frozen=True)
class TsaToken:
    tsr: bytes  # the whole DER TimeStampResp (what `openssl ts -verify -in` takes)
    gen_time: dt.datetime
    serial: int


def load_pem_certs(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise VerificationError(f"cannot read TSA trust certificates from {path}: {exc}") from exc


def verify_token(tsr: bytes, data: bytes, trusted: Sequence[x509.Certificate]) -> TsaToken:
    """Check a stored token against ``data``; raises VerificationError naming the failure."""
    try:
        resp = tsp.decode_timestamp_response(tsr)
    except ValueError as exc:
        raise VerificationError(f"TSA token unreadable: {exc}") from exc
    roots = [c for c in trusted if c.subject == c.issuer]
    inter = [c for c in trusted if c.subject != c.issuer]
    if not roots:
        raise VerificationError("TSA token: no trusted root certificate configured")
    builder = tsp.VerifierBuilder()
    for r in roots:
        builder = builder.add_root_certificate(r)
    for c in inter:
        builder = builder.add_intermediate_certificate(c)
    try:
        builder.build().verify_message(resp, data)
    except tsp.VerificationError as exc:
        raise VerificationError(f"TSA token does not verify: {exc}") from exc
    info = resp.tst_info
    return TsaToken(tsr, info.gen_time.astimezone(dt.UTC), info.serial_number)


class TsaAnchor(Anchor):
    """Client of one RFC 3161 TSA over HTTP."""

    name = "tsa"

    def __init__(self, url: str, *, timeout_s: float = 10.0, trusted: Sequence[x509.Certificate] = ()) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.trusted = list(trusted)

    def stamp(self, data: bytes) -> TsaToken:
        req = (tsp.TimestampRequestBuilder().data(data).hash_algorithm(tsp.HashAlgorithm.SHA256)
               .nonce(nonce=True).cert_request(cert_request=True).build())
        status, content = http_request("POST", self.url, req.as_bytes(), timeout_s=self.timeout_s,
                                       headers={"Content-Type": CONTENT_TYPE_QUERY})
        if status != 200:
            raise UplinkError(f"TSA {self.url} answered HTTP {status}")
        try:
            resp = tsp.decode_timestamp_response(content)
        except ValueError as exc:
            raise UplinkError(f"TSA {self.url} sent an unreadable reply: {exc}") from exc
        if resp.status not in (tsp.PKIStatus.GRANTED, tsp.PKIStatus.GRANTED_WITH_MODS):
            raise UplinkError(f"TSA {self.url} refused: status {resp.status} {resp.status_string}")
        info = resp.tst_info
        if info.nonce != req.nonce:
            raise UplinkError(f"TSA {self.url} reply has the wrong nonce (replayed or mixed up)")
        if info.message_imprint.message != hashlib.sha256(data).digest():
            raise UplinkError(f"TSA {self.url} stamped a different hash")
        if self.trusted:
            try:
                verify_token(content, data, self.trusted)
            except VerificationError as exc:
                raise UplinkError(f"TSA {self.url}: {exc}") from exc
        return TsaToken(content, info.gen_time.astimezone(dt.UTC), info.serial_number)

    def submit(self, note: bytes, checkpoint: Checkpoint) -> AnchorReceipt:
        token = self.stamp(note)
        return AnchorReceipt(
            anchor=self.name, checkpoint_size=checkpoint.size, note_sha256=hashlib.sha256(note).hexdigest(),
            time_ns=int(token.gen_time.timestamp() * 1e6) * 1000,
            data={"url": self.url, "token": base64.b64encode(token.tsr).decode(),
                  "gen_time": token.gen_time.isoformat(), "serial": str(token.serial)})

"""One certificate per received vault: ``OUT/<device>/device/cert.pem`` (+ ``chain.pem``), written once.

The first verified record of a device pins its leaf certificate next to its items, so that
``evidence-agent verify OUT/<device>`` works from the folder alone; a record signed with any other
certificate is refused (a re-keyed device needs a new vault). Without ``--trust-ca`` this is trust on
first use, and the log says so. The usual case — the same leaf again — is a dictionary lookup on its DER.
With a CRL (``ingest --crl``, re-read when the file changes) a leaf the customs CA revoked is refused from
its revocation time on (reason ``revoked``); what was stored before stays.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.customs.guard import Refused
from agent.customs.store.durable import SyncBatch
from agent.signing.revocation import CrlFile

log = logging.getLogger(__name__)


class Pins:
    def __init__(self, out: Path, sync: SyncBatch, *, trust_on_first_use: bool,
                 revocations: CrlFile | None = None) -> None:
        self.out = out
        self.revocations = revocations
        self.sync = sync  # the ingest's batch: the pinned files are durable before any ack
        self.tofu = trust_on_first_use
        self._pem: dict[str, bytes] = {}
        self._der: dict[str, bytes] = {}  # device -> leaf DER already checked against its pinned file

    def pin(self, device: str, certs: list[x509.Certificate], leaf_der: bytes) -> None:
        """Pin on first use, or check against the pinned leaf; raises Refused for another certificate
        or a revoked one."""
        if self.revocations is not None:
            self._not_revoked(device, certs[0])
        if self._der.get(device) == leaf_der:
            return
        self._pin_pem(device, certs)
        self._der[device] = leaf_der

    def _not_revoked(self, device: str, leaf: x509.Certificate) -> None:
        assert self.revocations is not None
        entry = self.revocations.revoked(leaf)
        if entry is not None and dt.datetime.now(dt.UTC) >= entry.since:
            raise Refused(f"record of {device} is signed by a revoked certificate: {entry.describe()}", 0x87,
                          "revoked")

    def _pin_pem(self, device: str, certs: list[x509.Certificate]) -> None:
        vault = self.out / device / "device"
        leaf_pem = certs[0].public_bytes(serialization.Encoding.PEM)
        pinned = vault / "cert.pem"
        if self._pem.get(device) == leaf_pem:
            return
        if pinned.exists():
            self._pem[device] = pinned.read_bytes()
            if self._pem[device] != leaf_pem:
                raise Refused(f"record of {device} is signed with another certificate than the one on file "
                              f"({pinned}); a re-keyed device needs a new vault", 0x87, "untrusted")
            return
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[1:])
        self.sync.write(vault / "chain.pem", chain_pem)
        self.sync.write(pinned, leaf_pem)
        self._pem[device] = leaf_pem
        if self.tofu:
            log.warning("%s: certificate pinned on first use (no --trust-ca given)", device)

"""Wiring: build the Merkle log, anchors and anchorer for a running agent from an AnchorConfig."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from agent.anchor.base import Anchor
from agent.anchor.log import DeviceLog, LogFiles
from agent.anchor.note import NoteSigner, parse_verifier_key
from agent.anchoring.anchorer import Anchorer
from agent.anchoring.settings import AnchorConfig
from agent.core.clock import Clock
from agent.core.errors import ConfigError
from agent.core.model import Moment, SealedItem
from agent.device.sealer import Sealer
from agent.signing.keys import DeviceIdentity


def build_anchors(cfg: AnchorConfig, device_id: str, identity: DeviceIdentity | None = None) -> list[Anchor]:
    """The anchors the config names; Rekor needs the device identity (its entries are signed by the device key).
    Each anchor's client (rfc3161-client, sigstore-models, the ledger's HTTP client) is loaded only when the
    config names that anchor: a device without them does not carry their memory."""
    anchors: list[Anchor] = []
    if cfg.tsa.url is not None:
        from agent.anchor.tsa import TsaAnchor, load_pem_certs

        trusted = load_pem_certs(cfg.tsa.ca_file) if cfg.tsa.ca_file else []
        anchors.append(TsaAnchor(str(cfg.tsa.url), timeout_s=cfg.tsa.timeout_s, trusted=trusted))
    if cfg.ledger.url is not None:
        from agent.anchor.ledger import LedgerAnchor

        keys = [parse_verifier_key(cfg.ledger.verifier_key)] if cfg.ledger.verifier_key else []
        anchors.append(LedgerAnchor(str(cfg.ledger.url), device_id, api_token=cfg.ledger.api_token,
                                    timeout_s=cfg.ledger.timeout_s, hash_alg=cfg.ledger.hash_alg, ledger_keys=keys))
    rk = cfg.rekor
    if rk.url is not None and rk.public_key is not None and rk.origin is not None and identity is not None:
        from agent.anchor.rekor import log_verifier
        from agent.anchoring.rekor import RekorAnchor

        device_key = identity.cert.public_key()
        if not isinstance(device_key, ec.EllipticCurvePublicKey):
            raise ConfigError("anchor.rekor: the device key must be ECDSA P-256 for hashedrekord entries")
        anchors.append(RekorAnchor(str(rk.url), device_key=device_key, sign=identity.sign,
                                   log_keys=[log_verifier(rk.origin, rk.public_key.read_bytes())],
                                   timeout_s=rk.timeout_s, tiles_url=None if rk.tiles_url is None
                                   else str(rk.tiles_url)))
    return anchors


def _prime_rekor(anchors: list[Anchor], files: LogFiles) -> None:
    """Rekor anchors learn the newest log checkpoint already receipted, so the next receipt proves consistency."""
    primers = [prime for a in anchors if callable(prime := getattr(a, "prime", None))]  # RekorAnchor's (loaded lazily)
    if not primers:
        return
    notes = {hashlib.sha256(n.encode()).hexdigest(): n.encode() for n in files.checkpoint_notes().values()}
    receipts = files.receipts()
    for prime in primers:
        prime(receipts, notes.get)


class AnchorService:
    """DeviceLog + Anchorer attached to a Sealer. ``start()`` after the sealer exists; ``close()`` idempotent."""

    def __init__(self, cfg: AnchorConfig, *, sealer: Sealer, moment: Callable[[], Moment], clock: Clock,
                 vault_dir: Path, device_id: str, anchors: list[Anchor] | None = None,
                 anchor_poll_s: float = 1.0) -> None:
        origin = f"{cfg.origin_prefix}/{device_id}"
        identity = sealer.identity
        signer = NoteSigner.ecdsa(origin, identity.cert.public_key(), identity.sign)  # type: ignore[arg-type]

        def seal(kind: str, extra: dict[str, Any]) -> SealedItem:
            return sealer.seal(kind, moment(), extra=extra)

        chosen = build_anchors(cfg, device_id, identity) if anchors is None else anchors
        files = LogFiles(Path(vault_dir) / "log")
        _prime_rekor(chosen, files)
        self.anchorer = Anchorer(chosen, files, clock=clock,
                                 seal_receipt=lambda extra: seal("receipt", extra),
                                 backoff_initial_s=cfg.backoff_initial_s, backoff_max_s=cfg.backoff_max_s,
                                 poll_s=anchor_poll_s)
        self.log = DeviceLog(vault_dir, origin=origin, signer=signer, seal=seal, clock=clock,
                             batch_max=cfg.batch_max_records, batch_interval_s=cfg.batch_interval_s,
                             on_checkpoint=self.anchorer.offer)
        sealer.add_listener(self.log.on_sealed)
        # bounded so a stop stays inside systemd's TimeoutStopSec=30s even when Rekor hangs (the next start anchors)
        waits = (cfg.tsa.timeout_s, cfg.ledger.timeout_s, min(cfg.rekor.timeout_s, 10.0))
        self._final_wait_s = max(waits) + 1.0 if chosen else 0.0

    def start(self) -> None:
        self.log.start()
        self.anchorer.start()

    def final_checkpoint(self, wait_s: float | None = None) -> None:
        """At a clean stop: a checkpoint over everything sealed so far, anchored now when the anchors answer.

        The anchor worker is woken and given up to ``wait_s`` (default: the anchors' own timeouts) to
        anchor it; its receipts are sealed and logged before the log closes (``close()`` stops the anchorer
        first). If an anchor does not answer, the worker keeps retrying while the uplink drains, and the next
        start anchors the rest. The final checkpoint's own record and its receipts cannot be inside that
        checkpoint (they name it): the next start's first checkpoint covers them.
        """
        self.log.pump()
        self.log.checkpoint()  # None when the newest checkpoint already covers everything: anchor that one
        self.anchorer.reset_backoff()
        deadline = time.monotonic() + (self._final_wait_s if wait_s is None else wait_s)
        while self.anchorer.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.log.pump()

    def close(self) -> None:
        """Anchorer first (it may still seal a receipt), then the log, which takes what is queued."""
        self.anchorer.close()
        self.log.close()


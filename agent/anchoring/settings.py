"""Anchoring configuration (the ``[anchor]`` section of the agent's TOML)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TsaConfig(_Section):
    """RFC 3161 time-stamping of checkpoints (and of C2PA signatures unless [video.c2pa] names another TSA)."""

    url: HttpUrl | None = Field(None, description="RFC 3161 time-stamping endpoint; unset = no TSA anchor.")
    ca_file: Path | None = Field(None, description="PEM roots (and intermediates) that issued the TSA certificate.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="HTTP timeout of one TSA request.")


class LedgerConfig(_Section):
    """The customs evidence-storage API (docs/openapi-evidence-storage.yaml)."""

    url: HttpUrl | None = Field(None, description="Customs evidence-storage API base URL; unset = no ledger anchor.")
    api_token: str | None = Field(None, description="Bearer token issued by the platform for this device.")
    verifier_key: str | None = Field(None, description="The ledger's signed-note verifier key (name+id+key).")
    hash_alg: Literal["sha256", "sm3"] = Field("sha256", description="Hash the platform wants for item hashes.")
    submit_items: bool = Field(False, description="Also submit each item's hash (one request per item).")
    timeout_s: float = Field(10.0, gt=0, le=120, description="HTTP timeout of one ledger request.")


class RekorConfig(_Section):
    """A Sigstore Rekor v2 transparency log (rekor-tiles) that logs each checkpoint note (docs/deploy-customs.md)."""

    url: HttpUrl | None = Field(None, description="Rekor v2 base URL (POST /api/v2/log/entries); unset = no Rekor.")
    public_key: Path | None = Field(None, description="PEM public key of the log's checkpoint signer (Ed25519/ECDSA).")
    origin: str | None = Field(None, pattern=r"^[^\s+]+$",
                               description="The log's checkpoint origin (rekor-server --hostname).")
    tiles_url: HttpUrl | None = Field(None, description="Where the log's tiles and checkpoint are read (its static "
                                      "file server); set = each receipt carries a consistency proof to the last.")
    timeout_s: float = Field(20.0, gt=0, le=300, description="HTTP timeout of one entry (Rekor answers once the "
                             "entry is in a published checkpoint; Rekor asks clients for >= 20 s).")

    @field_validator("public_key")
    @classmethod
    def _readable_key(cls, v: Path | None) -> Path | None:
        if v is None:
            return v
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        try:
            key = serialization.load_pem_public_key(v.read_bytes())
        except OSError as exc:
            raise ValueError(f"cannot read {v}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ValueError(f"{v} is not a PEM public key") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise ValueError(f"{v}: the log key must be Ed25519 or ECDSA")
        return v

    @model_validator(mode="after")
    def _complete(self) -> RekorConfig:
        if self.url is not None and (self.public_key is None or self.origin is None):
            missing = "public_key" if self.public_key is None else "origin"
            raise ValueError(f"url is set but {missing} is not: receipts could not be checked against the log")
        return self


class AnchorConfig(_Section):
    """Device Merkle log, signed checkpoints and their anchors (docs/anchoring.md)."""

    enabled: bool = Field(True, description="Keep the Merkle log and sign checkpoints.")
    origin_prefix: str = Field("evidence.example", pattern=r"^[^\s+]+$",
                               description="Checkpoint origin = <origin_prefix>/<device id>.")
    batch_max_records: int = Field(256, ge=1, le=1_000_000, description="Close a batch after this many records.")
    batch_interval_s: float = Field(60.0, gt=0, le=86_400, description="... or this long after its first record.")
    backoff_initial_s: float = Field(5.0, gt=0, description="First retry delay after a failed anchor request.")
    backoff_max_s: float = Field(600.0, gt=0, description="Retry delay cap (doubles up to this).")
    backdate_tolerance_s: float = Field(900.0, ge=0, description="How far a capture time may precede the TSA "
                                        "time of a receipt logged before it (segment length) before verify flags it.")
    clock_tolerance_s: float = Field(5.0, ge=0, description="Slack for capture times later than an anchor time.")
    tsa: TsaConfig = Field(default_factory=TsaConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    rekor: RekorConfig = Field(default_factory=RekorConfig)

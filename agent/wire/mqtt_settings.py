"""Broker connection settings (URL, mutual TLS, MQTT v5 limits), shared by device, ingest and officer tools."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.core.errors import ConfigError

MQTT_MAX_PACKET = 268_435_455  # protocol limit when the broker states none


class BrokerUrl(BaseModel):
    """``mqtt://host:port`` (plain TCP, local use) or ``mqtts://host:port`` (TLS)."""

    model_config = ConfigDict(frozen=True)

    scheme: Literal["mqtt", "mqtts"]
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"broker URL {url!r} must look like mqtt://host:port or mqtts://host:port")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError as exc:
            raise ConfigError(f"broker URL {url!r} has a bad port: {exc}") from exc
        return cls(scheme=parts.scheme, host=parts.hostname, port=port)  # type: ignore[arg-type]

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class TlsConfig(BaseModel):
    """Mutual TLS: the broker's CA, and this client's certificate + key (CN = client identity)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path = Field(description="PEM CA that issued the broker's certificate.")
    cert_file: Path | None = Field(None, description="This client's certificate (PEM); with key_file.")
    key_file: Path | None = Field(None, description="This client's private key (PEM); with cert_file.")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together")
        return self


class MqttConfig(BaseModel):
    """How one client (device, officer or ingest) talks to the broker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str = Field("mqtts://localhost:8883", description="mqtts://host:port (TLS) or mqtt://host:port.")
    client_id: str = Field(description="MQTT client id (the device id for a device).")
    tls: TlsConfig | None = Field(None, description="Mutual TLS; required for mqtts://.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive.")
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0,
                                  description="The broker keeps the session (and queued QoS 1) this long.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(60.0, gt=0, description="Reconnect delay cap (doubles up to this).")
    max_inflight: int = Field(32, ge=1, le=65535, description="QoS 1 messages awaiting PUBACK at once.")
    handler_queue: int = Field(1000, ge=1, description="Inbound messages waiting for handlers.")

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str) -> str:
        try:
            BrokerUrl.parse(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return v

    @model_validator(mode="after")
    def _tls(self) -> MqttConfig:
        if BrokerUrl.parse(self.broker).tls and self.tls is None:
            raise ValueError("an mqtts:// broker needs a [tls] section (ca_file, cert_file, key_file)")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    @property
    def url(self) -> BrokerUrl:
        return BrokerUrl.parse(self.broker)

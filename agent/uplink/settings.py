"""Uplink configuration (the ``[uplink]`` section of the agent config), validated by pydantic."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agent.core.errors import ConfigError
from agent.core.vocab import ALERT_KINDS
from agent.uplink.settings_commands import CommandsConfig, LiveConfig
from agent.wire.mqtt_settings import MqttConfig, TlsConfig


class UplinkConfig(BaseModel):
    """The device uplink: broker connection, outbox and status publishing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Upload sealed evidence and accept commands over MQTT.")
    mqtt: MqttConfig = Field(description="Broker connection (URL, client id, mutual TLS, MQTT v5 limits).")
    outbox_path: Path = Field(Path("/var/lib/evidence-agent/outbox.sqlite"),
                              description="Durable SQLite outbox (entries leave only on PUBACK).")
    chunk_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024,
                             description="Media chunk size upper bound; the broker's maximum packet size may lower it.")
    window_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024, description="Bytes in flight (unacknowledged) at once.")
    status_interval_s: float = Field(60.0, gt=0, description="Seconds between retained status messages.")
    alert_kinds: tuple[str, ...] = Field(ALERT_KINDS,
                                         description="Record kinds also published as alerts (ahead of media).")
    # "No matching subscribers" (0x10) is a success code; for evidence it means nobody will store it.
    require_subscriber: bool = Field(True, description="Treat MQTT 'no matching subscribers' as not delivered.")
    retry_after_s: float = Field(5.0, gt=0, description="Back off this long after a retryable refusal.")
    commands: CommandsConfig = Field(default_factory=CommandsConfig, description="Signed officer commands.")
    live: LiveConfig = Field(default_factory=LiveConfig, description="Live view bounds.")

    @classmethod
    def for_broker(cls, broker: str, *, client_id: str, outbox_path: Path, tls: TlsConfig | None = None,
                   **kw: object) -> UplinkConfig:
        """Settings from a URL alone (``evidence-agent demo --broker``); ConfigError names what is wrong."""
        try:
            mqtt = MqttConfig(broker=broker, client_id=client_id, tls=tls)
            return cls.model_validate({"enabled": True, "mqtt": mqtt, "outbox_path": outbox_path, **kw})
        except ValueError as exc:
            raise ConfigError(f"uplink settings for {broker}: {exc}") from None

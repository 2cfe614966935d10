"""Uplink configuration (the ``[uplink]`` section of the agent config), validated by pydantic."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agent.core.errors import ConfigError
from agent.uplink.settings_commands import CommandsConfig, LiveConfig
from agent.wire.mqtt_settings import MqttConfig, TlsConfig


class UplinkConfig(BaseModel):
    """The device uplink: broker connection, outbox and status publishing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    mqtt: MqttConfig
    outbox_path: Path = Path("/var/lib/evidence-agent/outbox.sqlite")
    chunk_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)  # upper bound; the broker may lower it
    window_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)  # bytes in flight (unacknowledged) at once
    status_interval_s: float = Field(60.0, gt=0)
    alert_kinds: tuple[str, ...] = ("event", "tamper", "alert")
    # "No matching subscribers" (0x10) is a success code; for evidence it means nobody will store it.
    require_subscriber: bool = True
    retry_after_s: float = Field(5.0, gt=0)  # back off this long after a retryable refusal
    commands: CommandsConfig = Field(default_factory=CommandsConfig)  # signed officer commands
    live: LiveConfig = Field(default_factory=LiveConfig)  # live view bounds

    @classmethod
    def for_broker(cls, broker: str, *, client_id: str, outbox_path: Path, tls: TlsConfig | None = None,
                   **kw: object) -> UplinkConfig:
        """Settings from a URL alone (``evidence-agent demo --broker``); ConfigError names what is wrong."""
        try:
            mqtt = MqttConfig(broker=broker, client_id=client_id, tls=tls)
            return cls.model_validate({"enabled": True, "mqtt": mqtt, "outbox_path": outbox_path, **kw})
        except ValueError as exc:
            raise ConfigError(f"uplink settings for {broker}: {exc}") from None

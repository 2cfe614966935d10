"""Agent configuration: one TOML file, validated on load.

Unknown keys are rejected and every error names the file and the dotted key, so a technician
can fix a typo from the message alone; `evidence-agent check-config --config FILE` runs just this (suitable
for a systemd ``ExecStartPre=``). Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.anchoring.settings import AnchorConfig
from agent.audio.settings import AudioConfig
from agent.capture.settings import CaptureConfig
from agent.core.errors import ConfigError
from agent.core.vocab import ID_PATTERN
from agent.gps.settings import GpsConfig
from agent.gps.timequality import TimeConfig
from agent.hardware.settings import GpioConfig
from agent.uplink.settings import UplinkConfig
from agent.video.settings import VideoConfig

#: keys the agent sets from another one, so there is one place for each (the recorder's copies are not settings)
INHERITED = {"video.fps": "capture.fps", "video.still_interval_s": "capture.still_interval_s",
             "video.still_quality": "capture.jpeg_quality"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(_Section):
    """Who this device is (its certificate and every record name it)."""

    id: str = Field("demo-device", pattern=ID_PATTERN, description="Device id (certificate CN, MQTT username).")
    site_id: str = Field("demo-site", pattern=ID_PATTERN, description="Registered inspection site id.")
    organization: str = Field("Demo Enterprise", min_length=1, description="Enterprise name (certificate O=).")


class IdentityConfig(_Section):
    """Where the device key and certificate live."""

    key_dir: Path = Field(Path("keys"), description="Folder with device.key (0600), device.pem and ca.pem.")


class VaultConfig(_Section):
    """The evidence vault on local storage."""

    path: Path = Field(Path("vault"), description="Evidence vault folder.")
    quota_mb: int = Field(4096, gt=0, description="Media bytes the vault may hold; sealing stops beyond it.")


class AgentConfig(_Section):
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    vault: VaultConfig = Field(default_factory=VaultConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    gps: GpsConfig = Field(default_factory=GpsConfig)
    time: TimeConfig = Field(default_factory=TimeConfig)
    uplink: UplinkConfig | None = Field(None, description="MQTT uplink; absent = local vault only.")
    gpio: GpioConfig = Field(default_factory=GpioConfig)
    anchor: AnchorConfig = Field(default_factory=AnchorConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)

    @model_validator(mode="after")
    def _one_place_each(self) -> AgentConfig:
        for key, owner in INHERITED.items():
            if key.split(".", 1)[1] in self.video.model_fields_set:
                raise ValueError(f"{key} is not a setting of the agent: set {owner} (one value for video and stills)")
        if self.audio.enabled and (self.uplink is None or not self.uplink.enabled):
            raise ValueError("audio.enabled needs the uplink: voice sessions are started by officers' commands")
        return self


def _format(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) if str(p).isprintable() else repr(str(p)) for p in err["loc"]) or "(top level)"
        msg = "unknown key (not a setting; check the spelling)" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def _resolve(cfg: AgentConfig, base: Path) -> AgentConfig:
    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    tsa = cfg.anchor.tsa
    if tsa.ca_file is not None:
        tsa = tsa.model_copy(update={"ca_file": fix(tsa.ca_file)})
    return cfg.model_copy(update={
        "identity": cfg.identity.model_copy(update={"key_dir": fix(cfg.identity.key_dir)}),
        "vault": cfg.vault.model_copy(update={"path": fix(cfg.vault.path)}),
        "anchor": cfg.anchor.model_copy(update={"tsa": tsa}),
        "audio": cfg.audio.model_copy(update={
            k: fix(v) for k, v in (("source_file", cfg.audio.source_file), ("sink_file", cfg.audio.sink_file))
            if v is not None}),
    })


def parse_config(data: dict[str, Any], source: str = "<config>", base: Path | None = None) -> AgentConfig:
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None
    return _resolve(cfg, base) if base is not None else cfg


def load_config(path: Path) -> AgentConfig:
    """Read and validate a TOML config; raises ConfigError naming the file and key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path), Path(path).resolve().parent)


def example_toml() -> str:
    """A commented example config with every section at its default."""
    return EXAMPLE


EXAMPLE = """\
# evidence-agent configuration (TOML). Unknown keys are rejected.
[device]
id = "cam-0001"
site_id = "site-0001"
organization = "Example Enterprise Ltd"

[identity]
key_dir = "/var/lib/evidence-agent/keys"

[vault]
path = "/var/lib/evidence-agent/vault"
quota_mb = 8192

[capture]
backend = "synthetic"     # synthetic | pyav (file/rtsp) | opencv (V4L2) | picamera2
width = 1280
height = 720
fps = 10
still_interval_s = 5

[gps]
source = "simulated"      # simulated | serial | file | gpsd | disabled

[video]
enabled = true
segment_seconds = 10
overlay = false

[anchor]
batch_max_records = 256
batch_interval_s = 60
# [anchor.tsa]
# url = "https://tsa.example/tsr"
# [anchor.ledger]
# url = "https://evidence.customs.example/api/v1"

# [uplink]
# enabled = true
# [uplink.mqtt]
# broker = "mqtts://broker.customs.example:8883"
# client_id = "cam-0001"
# [uplink.mqtt.tls]
# ca_file = "/etc/evidence-agent/broker-ca.pem"
# cert_file = "/var/lib/evidence-agent/keys/device.pem"
# key_file = "/var/lib/evidence-agent/keys/device.key"

[gpio]
enabled = false
"""


"""Configuration for officer commands and live view (embedded by the agent's config under ``uplink``).

Every limit an officer's request can ask for is bounded here, so a signed but greedy request cannot
make the device stream more than the site's uplink or CPU can carry.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CommandsConfig(BaseModel):
    """Signed officer commands: who is trusted, how fresh a command must be, where replays are remembered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Accept signed officer commands.")
    trust_dir: Path = Field(
        default=Path("/etc/evidence-agent/officers"),
        description="directory of officer certificates / public keys (*.pem) and permissions.json, which grants "
                    "only what it lists (no file: no command)",
    )
    trust_admin: Path | None = Field(
        default=None,
        description="the fleet-admin certificate (provision --trust-admin): signed officer trust bundles from the "
                    "broker's trust topic then replace trust_dir (which must be writable by the agent)",
    )
    replay_db: Path | None = Field(
        default=None, description="SQLite replay cache; default <vault>/state/replay.sqlite"
    )
    max_ttl_s: float = Field(default=300.0, gt=0, le=86_400, description="longest expiry-issued accepted")
    clock_skew_s: float = Field(default=30.0, ge=0, le=3_600, description="tolerated officer/device skew")
    max_message_bytes: int = Field(default=16_384, ge=512, le=1_048_576, description="Larger commands are refused.")


class LiveConfig(BaseModel):
    """Upper bounds for live view; a request asking for more is clamped to these, never refused for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Allow live view sessions.")
    max_width: int = Field(default=1920, ge=16, le=4096, description="Widest live frame.")
    max_height: int = Field(default=1080, ge=16, le=4096, description="Tallest live frame.")
    default_width: int = Field(default=640, ge=16, le=4096, description="Width when the request names none.")
    default_height: int = Field(default=480, ge=16, le=4096, description="Height when the request names none.")
    max_fps: float = Field(default=15.0, gt=0, le=60, description="Highest live frame rate.")
    default_fps: float = Field(default=10.0, gt=0, le=60, description="Frame rate when the request names none.")
    min_quality: int = Field(default=30, ge=1, le=100, description="Lowest JPEG quality.")
    max_quality: int = Field(default=90, ge=1, le=100, description="Highest JPEG quality.")
    default_quality: int = Field(default=75, ge=1, le=100, description="JPEG quality when the request names none.")
    max_seconds: float = Field(default=1800.0, gt=0, le=86_400, description="an inspection takes ~25 minutes")
    default_seconds: float = Field(default=60.0, gt=0, le=86_400, description="Session length if unnamed.")
    keepalive_timeout_s: float = Field(default=10.0, gt=0, le=600,
                                       description="stop a session after this long without a keepalive")
    max_sessions: int = Field(default=4, ge=1, le=32, description="Concurrent live sessions.")
    h264: bool = Field(default=True, description="offer the H.264 fMP4 rendition (else JPEG only)")
    video_width: int = Field(default=1280, ge=16, le=4096, description="default H.264 size (camera aspect kept)")
    video_height: int = Field(default=720, ge=16, le=4096, description="default H.264 height")
    bitrate_kbps: int = Field(default=2000, ge=50, le=20_000, description="H.264 target at 1280x720 "
                              "(scaled by pixel count); steps down when the uplink falls behind")
    min_bitrate_kbps: int = Field(default=250, ge=50, le=20_000, description="lowest H.264 bitrate step")
    fragment_ms: int = Field(default=200, ge=40, le=2000, description="frames per signed fragment")
    gop_s: float = Field(default=2.0, gt=0, le=10, description="keyframe interval (a viewer joins at once "
                         "anyway: a keyframe is forced)")
    encoder_preset: str = Field(default="ultrafast", pattern=r"^(ultrafast|superfast|veryfast|faster|fast)$",
                                description="libx264 preset of the live rendition")

    @model_validator(mode="after")
    def _defaults_within_bounds(self) -> LiveConfig:
        problems = []
        if self.default_width > self.max_width or self.default_height > self.max_height:
            problems.append("default size exceeds max size")
        if self.default_fps > self.max_fps:
            problems.append("default_fps exceeds max_fps")
        if not self.min_quality <= self.default_quality <= self.max_quality:
            problems.append("default_quality outside [min_quality, max_quality]")
        if self.default_seconds > self.max_seconds:
            problems.append("default_seconds exceeds max_seconds")
        if problems:
            raise ValueError("; ".join(problems))
        return self

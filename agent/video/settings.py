"""Configuration of continuous video, its analytics and C2PA credentials (embedded by the agent's config).

The agent's config embeds these as ``video: VideoConfig``; every field says what it does so
``--validate-config`` errors read like documentation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EncoderName = Literal["auto", "libx264", "h264_v4l2m2m"]


class GeofenceConfig(BaseModel):
    """The registered site: a polygon of (lat, lon) vertices, or a centre and a radius."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    polygon: list[tuple[float, float]] | None = Field(
        default=None, description="site boundary as [lat, lon] vertices (WGS84 degrees), at least 3")
    centre: tuple[float, float] | None = Field(default=None, description="site centre [lat, lon]")
    radius_m: float | None = Field(default=None, gt=0, le=100_000, description="radius around centre, metres")

    @model_validator(mode="after")
    def _one_shape(self) -> GeofenceConfig:
        has_circle = self.centre is not None or self.radius_m is not None
        if self.polygon is not None and has_circle:
            raise ValueError("geofence: give either polygon or centre+radius_m, not both")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError("geofence.polygon needs at least 3 vertices")
        if has_circle and (self.centre is None or self.radius_m is None):
            raise ValueError("geofence: centre and radius_m go together")
        for lat, lon in ([*(self.polygon or []), *([self.centre] if self.centre else [])]):
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"geofence: ({lat}, {lon}) is not a WGS84 lat/lon")
        return self


class AnalyticsConfig(BaseModel):
    """Anti-falsification checks on a low-resolution grey copy of the frames."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Run the anti-falsification checks.")
    width: int = Field(default=160, ge=32, le=640, description="analysis copy width in pixels (height keeps aspect)")
    analysis_fps: float = Field(default=5.0, gt=0, le=60, description="frames per second analysed (others skipped)")
    dark_mean: float = Field(default=22.0, ge=0, le=255, description="mean grey below this = too dark / covered")
    uniform_std: float = Field(default=6.0, ge=0, le=128,
                               description="grey standard deviation below this = uniform image (lens covered)")
    frozen_seconds: float = Field(default=4.0, gt=0, le=600,
                                  description="no change for this long while the clock runs = frozen feed")
    frozen_noise_fraction: float = Field(
        default=0.005, ge=0, le=1,
        description="median share of sampled pixels that change between analysed frames at or above which "
                    "the feed shows live sensor noise (a still scene is live, not frozen)")
    frozen_refresh_fraction: float = Field(
        default=0.5, ge=0, le=1,
        description="share of sampled pixels one analysed frame may change (an encoder keyframe carrying fresh "
                    "sensor noise) at or above which the feed is live")
    frozen_content_delta: float = Field(
        default=12.0, gt=0, le=255,
        description="grey levels (on a 40-pixel-wide averaged copy) a region must change by to count as new "
                    "content; encoder flicker on a frozen picture stays below it")
    obstructed_fraction: float = Field(
        default=0.4, gt=0, le=1,
        description="share of the view's textured cells that lost their texture at or above which the view "
                    "is partly obstructed")
    replay_window_seconds: float = Field(
        default=600.0, ge=10, le=3600,
        description="how far back replayed footage is looked for (memory: about 1.5 kB per analysed frame)")
    replay_min_seconds: float = Field(
        default=8.0, gt=0, le=60,
        description="a sequence must repeat an earlier one for this long to count as replayed")
    replay_min_lag_seconds: float = Field(
        default=10.0, gt=0, le=600, description="shortest loop or rewind that counts as replayed")
    replay_hash_bits: int = Field(
        default=12, ge=0, le=128,
        description="firm difference-hash bits (of 256) two frames may differ in and still be the same picture")
    scene_change_score: float = Field(default=0.5, gt=0, le=2,
                                      description="1 - correlation with the settled scene above this = camera moved")
    scene_shift_px: float = Field(default=3.0, gt=0, le=100,
                                  description="global image shift (analysis pixels) that counts as camera moved")
    scene_shift_response: float = Field(default=0.3, ge=0, le=1,
                                        description="phase-correlation peak needed to trust a measured shift")
    scene_motion_max: float = Field(default=0.1, gt=0, le=2,
                                    description="frame-to-frame change above this = scene still moving, not moved")
    scene_settle_seconds: float = Field(default=2.0, gt=0, le=600,
                                        description="a changed view must persist this long to count as moved")
    onset_seconds: float = Field(default=1.0, ge=0, le=60, description="a condition must hold this long to start")
    end_seconds: float = Field(default=2.0, ge=0, le=600, description="and be clear this long to end")
    geofence: GeofenceConfig | None = Field(default=None, description="registered site area; None = no check")


class C2paConfig(BaseModel):
    """C2PA Content Credentials embedded in stills and segments (the signed record stays the truth)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Embed C2PA Content Credentials.")
    video: bool = Field(default=True, description="embed a manifest in each sealed segment")
    stills: bool = Field(default=True, description="embed a manifest in each sealed still")
    tsa_url: str | None = Field(default=None, description="RFC 3161 TSA for the C2PA signature (http/https)")
    claim_generator: str = Field(default="evidence-agent", description="claim_generator_info name")
    thumbnail: bool = Field(default=False, description="embed a C2PA thumbnail (~100 ms more per JPEG)")


class VideoConfig(BaseModel):
    """Continuous recording into sealed fragmented-MP4 H.264 segments, plus stills from the same frames."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="record continuous video segments (stills come from them)")
    segment_seconds: float = Field(default=10.0, ge=1, le=600, description="length of one sealed segment")
    fragment_seconds: float = Field(default=1.0, gt=0, le=10,
                                    description="keyframe/fragment interval: a crash loses at most this much")
    fps: float = Field(default=30.0, gt=0, le=120, description="nominal frame rate (GOP and last-frame duration)")
    encoder: EncoderName = Field(default="auto",
                                 description="auto = h264_v4l2m2m if it opens, else libx264")
    preset: str = Field(default="veryfast", description="libx264 preset")
    tune: str | None = Field(default="zerolatency",
                             description="libx264 tune; zerolatency = no lookahead/frame threads: ~40 MB less "
                                         "memory, frames leave the encoder at once (None = x264 default)")
    crf: int = Field(default=23, ge=0, le=51, description="libx264 constant rate factor")
    bitrate_kbps: int = Field(default=4000, ge=100, le=50_000, description="h264_v4l2m2m target bitrate")
    threads: int = Field(default=0, ge=0, le=16, description="encoder threads, 0 = encoder's choice")
    overlay: bool = Field(default=False, description="burn time, GPS, device and site id into video and stills")
    still_interval_s: float = Field(default=0.0, ge=0, le=86_400,
                                    description="take a still every N seconds while recording; 0 = only on request")
    still_quality: int = Field(default=90, ge=10, le=100, description="JPEG quality of stills")
    gps_interval_s: float = Field(default=1.0, gt=0, le=60, description="GPS track sampling interval")
    queue_size: int = Field(default=8, ge=1, le=256,
                            description="closed segments/stills/events waiting for sealing before back-pressure")
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    c2pa: C2paConfig = Field(default_factory=C2paConfig)

    @model_validator(mode="after")
    def _fragments_fit(self) -> VideoConfig:
        if self.fragment_seconds > self.segment_seconds:
            raise ValueError("video.fragment_seconds must not exceed video.segment_seconds")
        return self

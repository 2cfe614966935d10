"""The ``[capture]`` section of the agent's TOML config, validated by pydantic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.capture.base import CaptureSettings
from agent.capture.picamera2 import Picamera2Config


class CaptureConfig(BaseModel):
    """Which camera to use and how (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["synthetic", "opencv", "pyav", "picamera2"] = Field(
        default="synthetic", description="Camera backend: synthetic test pattern, pyav (video file or rtsp/http "
        "stream, decoded to I420 by the encoders' FFmpeg), opencv (V4L2 camera; also URL/file) or picamera2."
    )
    source: str | int | None = Field(
        default=None,
        description="opencv/pyav: V4L2 index (0) or /dev/videoN (opencv only), rtsp:// or http(s):// URL, "
        "or a video file path.",
    )
    width: int = Field(
        default=1280, gt=0, le=8192, description="Requested frame width in pixels (files keep their own)."
    )
    height: int = Field(
        default=720, gt=0, le=8192, description="Requested frame height in pixels (files keep their own)."
    )
    fps: float = Field(default=10.0, gt=0, le=120, description="Frame rate to request or, for synthetic, to generate.")
    seed: int = Field(
        default=0, ge=0, description="synthetic only: seed for the pattern's colours, motion and texture."
    )
    realtime: bool = Field(
        default=True, description="Pace frames in real time; false reads files or generates frames as fast as possible."
    )
    loop: bool = Field(default=False, description="opencv/pyav file sources: restart at the end instead of stopping.")
    sensor_width: int | None = Field(
        default=None, ge=16, le=16384, multiple_of=4, description="synthetic only: width of the simulated sensor "
        "that a full-resolution still is drawn at (e.g. 4608, a Camera Module 3; a multiple of 4); unset = the "
        "stream width.")
    sensor_height: int | None = Field(
        default=None, ge=16, le=16384, multiple_of=4,
        description="synthetic only: height of the simulated sensor (e.g. 2592; a multiple of 4).")
    still_interval_s: float = Field(default=5.0, gt=0, description="Seconds between periodic evidence stills (JPEG).")
    jpeg_quality: int = Field(default=90, ge=1, le=100, description="JPEG quality for stills (1-100).")
    picamera2: Picamera2Config = Field(default_factory=Picamera2Config,
                                       description="picamera2 only: camera, lores stream, encoder")

    @model_validator(mode="after")
    def _source_for_opencv(self) -> CaptureConfig:
        if self.backend == "opencv" and (self.source is None or self.source == ""):
            raise ValueError("backend \"opencv\" needs capture.source: a V4L2 index (0), /dev/videoN, an "
                             "rtsp:// or http(s):// URL or a video file")
        if self.backend == "pyav" and (self.source is None or self.source == "" or isinstance(self.source, int)
                                       or str(self.source).isdigit() or str(self.source).startswith("/dev/video")):
            raise ValueError("backend \"pyav\" needs capture.source: an rtsp:// or http(s):// URL or a video file "
                             "(V4L2 cameras: backend \"opencv\")")
        if (self.sensor_width is None) != (self.sensor_height is None):
            raise ValueError("capture.sensor_width and capture.sensor_height go together: set both or neither")
        if self.sensor_width is not None and self.sensor_height is not None and (
                self.sensor_width < self.width or self.sensor_height < self.height):
            raise ValueError(f"capture sensor {self.sensor_width}x{self.sensor_height} is smaller than the stream "
                             f"{self.width}x{self.height}")
        return self

    def to_settings(self) -> CaptureSettings:
        """The frozen runtime value the backends take."""
        return CaptureSettings(
            width=self.width,
            height=self.height,
            fps=self.fps,
            seed=self.seed,
            source=self.source,
            realtime=self.realtime,
            loop=self.loop,
            sensor_width=self.sensor_width,
            sensor_height=self.sensor_height,
        )

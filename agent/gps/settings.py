"""GPS configuration (the ``[gps]`` table) and the factory that opens the configured provider."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.core.clock import Clock
from agent.core.errors import GpsError
from agent.gps.provider import DisabledGps, GpsProvider


class GpsConfig(BaseModel):
    """Where positions come from; defaults give the demo's simulated walk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["simulated", "serial", "file", "gpsd", "disabled"] = Field(
        default="simulated", description="simulated walk, serial NMEA receiver, NMEA log replay, gpsd, or disabled")
    max_age_s: float = Field(
        default=2.0, gt=0, le=60, description="a fix older than this (monotonic seconds) is reported as no fix/stale")
    device: str = Field(
        default="/dev/serial0", description="serial device of the NMEA receiver (source = serial)")
    baud: int = Field(
        default=9600, gt=0, le=921600, description="serial baud rate (source = serial)")
    file: Path | None = Field(
        default=None, description="NMEA log to replay (source = file)")
    speed: float = Field(
        default=1.0, ge=0, description="replay speed: 1 = real time, 10 = ten times faster, 0 = flat out")
    loop: bool = Field(
        default=False, description="start the NMEA log again at its end (source = file)")
    gpsd_host: str = Field(
        default="127.0.0.1", description="gpsd host (source = gpsd)")
    gpsd_port: int = Field(
        default=2947, gt=0, lt=65536, description="gpsd TCP port (source = gpsd)")
    retry_s: float = Field(
        default=2.0, gt=0, le=300, description="wait before reopening a lost serial port or gpsd link")
    sim_lat: float = Field(
        default=31.2304, ge=-89.9, le=89.9, description="simulated site centre latitude, degrees")
    sim_lon: float = Field(
        default=121.4737, ge=-180, le=180, description="simulated site centre longitude, degrees")
    sim_radius_m: float = Field(
        default=25.0, gt=0, le=10_000, description="simulated walk stays within this radius")
    sim_step_m: float = Field(
        default=0.5, ge=0, le=100, description="simulated walk: metres moved per second")
    sim_seed: int = Field(
        default=1, description="seed of the simulated walk (same seed, same track)")

    @model_validator(mode="after")
    def _file_needs_path(self) -> GpsConfig:
        if self.source == "file" and self.file is None:
            raise ValueError("gps.file is required when gps.source = 'file'")
        return self


def open_gps(config: GpsConfig, clock: Clock) -> GpsProvider:
    """Start the configured provider. Raises GpsError only for a replay log that cannot be read."""
    if config.source == "disabled":
        return DisabledGps()
    if config.source == "simulated":
        from agent.gps.simulated import SimulatedGps

        return SimulatedGps(clock, lat=config.sim_lat, lon=config.sim_lon, radius_m=config.sim_radius_m,
                            step_m=config.sim_step_m, seed=config.sim_seed)
    if config.source == "serial":
        from agent.gps.sources import SerialGps

        return SerialGps(clock, config.device, config.baud, max_age_s=config.max_age_s, retry_s=config.retry_s)
    if config.source == "file":
        from agent.gps.sources import NmeaFileReplay

        assert config.file is not None
        return NmeaFileReplay(clock, config.file, speed=config.speed, loop=config.loop,
                              max_age_s=config.max_age_s)
    if config.source == "gpsd":
        from agent.gps.gpsd import GpsdGps

        return GpsdGps(clock, config.gpsd_host, config.gpsd_port, max_age_s=config.max_age_s,
                       retry_s=config.retry_s)
    raise GpsError(f"unknown gps.source {config.source!r}")  # unreachable: pydantic checked it

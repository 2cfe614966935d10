"""GPS: NMEA parsing, providers (serial, log replay, simulated, gpsd, disabled) and their config.

Importing the package does no I/O; providers start their reader thread when constructed.
"""

from agent.gps.provider import DisabledGps, FixTracker, GpsProvider
from agent.gps.settings import GpsConfig, open_gps

__all__ = ["DisabledGps", "FixTracker", "GpsConfig", "GpsProvider", "open_gps"]

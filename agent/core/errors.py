"""One exception root with families, so callers can catch as broadly as they mean to."""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A configuration file is missing, unreadable or invalid (the message names file and key)."""


class CaptureError(AgentError):
    """A camera source cannot be opened or stopped delivering frames."""


class GpsError(AgentError):
    """A GPS source cannot be opened or read."""


class SigningError(AgentError):
    """Keys or certificates are missing, unreadable or do not match."""


class VaultError(AgentError):
    """The vault cannot be written or read as expected."""


class UplinkError(AgentError):
    """The uplink (MQTT, anchors) failed in a way the caller must handle."""


class CommandError(AgentError):
    """An officer command was malformed, unauthorized, expired or replayed."""


class VerificationError(AgentError):
    """Evidence failed verification; ``problems`` lists every finding."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])

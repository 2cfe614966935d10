"""Device registrations: the one site each device may publish under (broker ACL, ingest, console).

The file is TOML, one line per device under ``[devices]``::

    [devices]
    cam-0001 = "site-A"

``evidence-officer broker-setup`` keeps it as ``OUTDIR/registry.toml`` and writes one ACL block per
device from it; ``evidence-officer ingest --registry FILE`` refuses any other (device, site).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from agent.core.errors import ConfigError
from agent.wire.topics import check_segment

REGISTRY_FILE = "registry.toml"


@dataclass(frozen=True)
class Registry:
    """device id -> site id."""

    sites: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def site_of(self, device: str) -> str | None:
        return self.sites.get(device)

    def allows(self, device: str, site: str) -> bool:
        return self.sites.get(device) == site

    def problem(self, site: str, device: str) -> str | None:
        """Why a message under ``evidence/<site>/<device>/`` is not allowed, or None."""
        if self.allows(device, site):
            return None
        return f"{device[:64]} is not registered at site {site[:64]!r} (registered: {self.site_of(device)!r})"

    def merged(self, pairs: Iterable[tuple[str, str]]) -> Registry:
        out = dict(self.sites)
        out.update(pairs)
        return Registry(MappingProxyType(out))

    def dump(self) -> str:
        lines = ["# device id = site id (evidence-officer broker-setup; docs/broker.md)", "[devices]"]
        lines += [f'{device} = "{site}"' for device, site in sorted(self.sites.items())]
        return "\n".join(lines) + "\n"


def check_pair(device: str, site: str, where: str) -> tuple[str, str]:
    try:
        return check_segment(device, "device id"), check_segment(site, "site id")
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_pair(text: str, where: str = "--device") -> tuple[str, str | None]:
    """``ID=SITE`` (or a bare ``ID``: site None)."""
    device, sep, site = text.partition("=")
    if not sep:
        return check_pair(device, "x", where)[0], None
    return check_pair(device, site, where)


def load_registry(path: Path) -> Registry:
    """Read a registry file; ConfigError names the file and the bad key."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the device registry: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML device registry: {exc}") from None
    unknown = sorted(set(doc) - {"devices"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (only [devices])")
    devices = doc.get("devices", {})
    if not isinstance(devices, dict):
        raise ConfigError(f"{path}: devices must be a table of device = \"site\"")
    pairs = {}
    for device, site in devices.items():
        if not isinstance(site, str):
            raise ConfigError(f"{path}: devices.{device}: the site must be a string")
        pairs[device] = check_pair(device, site, f"{path}: devices.{device}")[1]
    return Registry(MappingProxyType(pairs))

"""The customs broker's configuration: the shipped least-privilege ACL and mosquitto.conf templates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.wire.topics import check_segment

HERE = Path(__file__).parent
ACL_TEMPLATE = HERE / "acl.conf"
CONF_TEMPLATE = HERE / "mosquitto.conf"
_ROLES = ("ingest", "officer", "devices", "admin", "fleet-trust")


def _sections(text: str) -> tuple[str, dict[str, str]]:
    """Split the template at its ``# [role]`` markers: (preamble, role -> block)."""
    preamble: list[str] = []
    blocks: dict[str, list[str]] = {r: [] for r in _ROLES}
    current: str | None = None
    for line in text.splitlines():
        marker = next((r for r in _ROLES if line.startswith(f"# [{r}]")), None)
        if marker:
            current = marker
        (blocks[current] if current else preamble).append(line)
    return "\n".join(preamble), {r: "\n".join(b).strip() + "\n" for r, b in blocks.items()}


def render_acl(officers: Sequence[str], ingests: Sequence[str], admins: Sequence[str] = ()) -> str:
    """The ACL for these accounts; every name must be a plain identifier (it becomes a topic level)."""
    preamble, blocks = _sections(ACL_TEMPLATE.read_text())
    names = [*officers, *ingests, *admins]
    if len(set(names)) != len(names):
        raise ValueError("an account name is used twice (officer and ingest names must be distinct)")
    out = [preamble.rstrip() + "\n"]
    for name in ingests:
        out.append(blocks["ingest"].replace("{name}", check_segment(name, "ingest account")))
    for name in officers:
        out.append(blocks["officer"].replace("{name}", check_segment(name, "officer account")))
    out.append(blocks["devices"])
    for name in admins:  # officer trust bundles (docs/fleet-admin.md)
        out.append(blocks["admin"].replace("{name}", check_segment(name, "admin account")))
    out.append(blocks["fleet-trust"])
    return "\n".join(out)


def render_conf(values: Mapping[str, object]) -> str:
    """mosquitto.conf from the template; ``values`` fills every ``{placeholder}``."""
    return CONF_TEMPLATE.read_text().format(**values)

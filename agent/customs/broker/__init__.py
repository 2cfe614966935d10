"""The customs broker's configuration: the shipped least-privilege ACL, the dynamic-security rules that
keep shared subscriptions for ingest accounts, and the mosquitto.conf template."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.wire.topics import check_segment

HERE = Path(__file__).parent
ACL_TEMPLATE = HERE / "acl.conf"
CONF_TEMPLATE = HERE / "mosquitto.conf"
_ROLES = ("ingest", "officer", "device", "devices", "lab", "admin", "fleet-trust")


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


def _check_names(officers: Sequence[str], ingests: Sequence[str], devices: Sequence[str]) -> None:
    names = [*officers, *ingests, *devices]
    if len(set(names)) != len(names):
        raise ValueError("a name is used twice (officer, ingest and device names must be distinct)")


def render_acl(officers: Sequence[str], ingests: Sequence[str], devices: Mapping[str, str] | None = None,
               admins: Sequence[str] = ()) -> str:
    """The ACL for these accounts, fleet-admin accounts and registered devices (device id -> site id); every
    name must be a plain identifier (it becomes a topic level). ``devices=None`` is the test broker's any-site
    mode."""
    preamble, blocks = _sections(ACL_TEMPLATE.read_text())
    _check_names([*officers, *admins], ingests, list(devices or ()))
    if devices is None:
        cmd_topics = ["evidence/+/+/cmd"]
    else:
        cmd_topics = [f"evidence/{check_segment(site, 'site id')}/{check_segment(dev, 'device id')}/cmd"
                      for dev, site in sorted(devices.items())]
    talk_topics = [t.removesuffix("/cmd") + "/talk/+" for t in cmd_topics]
    out = [preamble.rstrip() + "\n"]
    for name in ingests:
        out.append(blocks["ingest"].replace("{name}", check_segment(name, "ingest account")))
    for name in officers:
        lines = []
        for line in blocks["officer"].replace("{name}", check_segment(name, "officer account")).splitlines():
            if "{cmd_topic}" in line:
                lines += [line.replace("{cmd_topic}", t) for t in cmd_topics]
            elif "{talk_topic}" in line:
                lines += [line.replace("{talk_topic}", t) for t in talk_topics]
            else:
                lines.append(line)
        out.append("\n".join(lines) + "\n")
    for dev, site in sorted((devices or {}).items()):
        out.append(blocks["device"].replace("{device}", dev).replace("{site}", site))
    out.append(blocks["devices"])
    if devices is None:
        out.append(blocks["lab"])
    for name in admins:  # officer trust bundles (docs/fleet-admin.md)
        out.append(blocks["admin"].replace("{name}", check_segment(name, "admin account")))
    out.append(blocks["fleet-trust"])
    return "\n".join(out)


def render_dynsec(officers: Sequence[str], ingests: Sequence[str], devices: Sequence[str]) -> str:
    """mosquitto_dynamic_security.so rules: ingest accounts may subscribe to ``$share/...``, every officer and
    registered device is refused it. Everything else the plugin leaves to acl_file (default access: defer)."""
    _check_names(officers, ingests, devices)
    no_share = {"acltype": "subscribePattern", "topic": "$share/#", "allow": False, "priority": 10}
    share = {"acltype": "subscribePattern", "topic": "$share/+/evidence/#", "allow": True, "priority": 10}
    doc = {
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                             "subscribe": False, "unsubscribe": False},
        "clients": [{"username": n, "textname": "ingest", "roles": [{"rolename": "ingest"}]} for n in ingests]
        + [{"username": n, "textname": "officer", "roles": [{"rolename": "no-share"}]} for n in officers]
        + [{"username": n, "textname": "device", "roles": [{"rolename": "no-share"}]} for n in sorted(devices)],
        "groups": [],
        "roles": [{"rolename": "ingest", "acls": [share]}, {"rolename": "no-share", "acls": [no_share]}],
    }
    return json.dumps(doc, indent=1) + "\n"


def render_conf(values: Mapping[str, object]) -> str:
    """mosquitto.conf from the template; ``values`` fills every ``{placeholder}``."""
    return CONF_TEMPLATE.read_text().format(**values)

"""The MQTT topic scheme, in one place (docs/asyncapi.yaml documents it; a test keeps the two in step).

Every device publishes under ``evidence/{site}/{device}/`` so one broker ACL pattern
(``pattern write evidence/+/%u/#``, identity = certificate CN = device id) confines a device to its
own topics. Officers get their replies under ``officer/{officer_id}/reply/{device}/...``, a slot only
that device may write (agent/customs/broker/acl.conf).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.vocab import ID_MAX, ID_RE

ROOT = "evidence"
OFFICER_ROOT = "officer"
# Channel names under the device prefix, with the QoS each is published at.
CHANNELS: dict[str, int] = {
    "availability": 1,  # retained "online"/"offline" (last will)
    "status": 1,  # retained JSON health
    "record": 1,  # sidecar (two lines) of every sealed record
    "media": 1,  # media chunks, user properties carry item/index/total/chunk hashes
    "alert": 1,  # records of alert kinds, repeated here for dashboards
    "receipt": 1,  # anchor receipts
    "cmd": 1,  # officer commands in
    "live/{session}": 0,  # live JPEG frames (H.264 fragments go at QoS 1: their PUBACKs pace the bitrate)
}
#: The one channel officers publish under a device's prefix besides ``cmd``: the officer's voice for one voice
#: session (QoS 0), signed by the officer's key; the device reads only its own (broker ACL) and verifies each message.
TALK = "talk/{session}"
_SEGMENT = ID_RE


def check_segment(value: str, what: str) -> str:
    """Ids become topic levels: no wildcards, slashes, '$' or empty strings."""
    if not _SEGMENT.match(value):
        raise ValueError(f"{what} {value!r} is not usable as an MQTT topic level "
                         f"(letters, digits, '.', '_', '-'; 1-{ID_MAX} characters, not starting with a symbol)")
    return value


@dataclass(frozen=True)
class DeviceTopics:
    """Topics of one device."""

    site: str
    device: str

    def __post_init__(self) -> None:
        check_segment(self.site, "site id")
        check_segment(self.device, "device id")

    @property
    def prefix(self) -> str:
        return f"{ROOT}/{self.site}/{self.device}"

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def record(self) -> str:
        return f"{self.prefix}/record"

    @property
    def media(self) -> str:
        return f"{self.prefix}/media"

    @property
    def alert(self) -> str:
        return f"{self.prefix}/alert"

    @property
    def receipt(self) -> str:
        return f"{self.prefix}/receipt"

    @property
    def cmd(self) -> str:
        return f"{self.prefix}/cmd"

    def live(self, session: str) -> str:
        return f"{self.prefix}/live/{check_segment(session, 'live session id')}"

    def talk(self, session: str) -> str:
        return f"{self.prefix}/talk/{check_segment(session, 'voice session id')}"

    def channel(self, name: str) -> str:
        if name not in CHANNELS or "{" in name:
            raise ValueError(f"unknown channel {name!r}")
        return f"{self.prefix}/{name}"


def officer_reply(officer_id: str, suffix: str = "") -> str:
    """Where a device answers an officer (the MQTT v5 response topic the officer sets)."""
    base = f"{OFFICER_ROOT}/{check_segment(officer_id, 'officer id')}/reply"
    return f"{base}/{suffix}" if suffix else base


def fleet_filter(channel: str, site: str = "+", device: str = "+") -> str:
    """Subscription filter for one channel across a fleet (``evidence/+/+/record``)."""
    return f"{ROOT}/{site}/{device}/{channel}"


def shared(filter_: str, group: str | None) -> str:
    """MQTT v5 shared subscription: workers of one group split the messages between them."""
    return filter_ if not group else f"$share/{check_segment(group, 'share group')}/{filter_}"


def parse_device_topic(topic: str) -> tuple[str, str, str]:
    """``evidence/{site}/{device}/{rest}`` -> (site, device, rest); ValueError for anything else."""
    parts = topic.split("/", 3)
    if len(parts) != 4 or parts[0] != ROOT or not parts[3]:
        raise ValueError(f"topic {topic!r} is not under {ROOT}/{{site}}/{{device}}/")
    check_segment(parts[1], "site id")
    check_segment(parts[2], "device id")
    return parts[1], parts[2], parts[3]


#: The retained, fleet-admin-signed officer trust bundle (agent.wire.trust_bundle); only admins write it.
TRUST_TOPIC = "fleet/trust"


def documented_addresses() -> list[str]:
    """Every address template the code uses (compared with docs/asyncapi.yaml by a test)."""
    device = [f"{ROOT}/{{site}}/{{device}}/{name}" for name in CHANNELS]
    return [*device, f"{ROOT}/{{site}}/{{device}}/{TALK}", f"{OFFICER_ROOT}/{{officer}}/reply/{{device}}/{{request}}",
            TRUST_TOPIC]

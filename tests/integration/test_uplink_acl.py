"""Broker ACLs: a device is confined to its own topics (certificate CN = device id)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.core.errors import UplinkError
from agent.wire.mqtt import Inbound, MqttLink
from agent.wire.topics import DeviceTopics
from tests.support.broker import Mosquitto

NOT_AUTHORIZED = 0x87


def _link(broker: Mosquitto, cn: str) -> MqttLink:
    link = MqttLink(broker.mqtt_config(cn, session_expiry_s=0), name=cn)
    link.start()
    assert link.wait_connected(10), link.last_error
    return link


def test_device_cannot_publish_as_another_device(mosquitto: Mosquitto) -> None:
    a = _link(mosquitto, "dev-acl-a")
    try:
        own, other = DeviceTopics("site-1", "dev-acl-a"), DeviceTopics("site-1", "dev-acl-b")
        assert a.publish_wait(own.record, b"x").code in (0x00, 0x10)
        for topic in (other.record, other.media, other.availability, other.status, other.live("s1"),
                      "officer/officer-alice/cmd", "elsewhere/topic"):
            result = a.publish_wait(topic, b"forged")
            assert result.code == NOT_AUTHORIZED, (topic, result)
    finally:
        a.close()


def test_device_cannot_read_another_devices_commands(mosquitto: Mosquitto) -> None:
    """Mosquitto 2.0 grants the SUBACK but applies read ACLs per message: B's commands never reach A."""
    a, b, officer = _link(mosquitto, "dev-acl-a2"), _link(mosquitto, "dev-acl-b2"), _link(mosquitto, "officer-alice")
    got_a: list[Inbound] = []
    got_b = threading.Event()
    try:
        b_cmd = DeviceTopics("site-1", "dev-acl-b2").cmd
        a.subscribe_wait(b_cmd, got_a.append)
        a.subscribe_wait("evidence/#", got_a.append)
        b.subscribe_wait(b_cmd, lambda m: got_b.set())
        assert officer.publish_wait(b_cmd, b"{}").code == 0
        assert got_b.wait(5), "the addressed device gets its command"
        time.sleep(0.5)
        assert [m.topic for m in got_a] == []
        # and A cannot inject a command for B either (only officers write cmd topics of others)
        assert a.publish_wait(b_cmd, b"{}").code == NOT_AUTHORIZED
    finally:
        for link in (a, b, officer):
            link.close()


def test_client_without_certificate_is_refused(mosquitto: Mosquitto) -> None:
    assert mosquitto.pki is not None
    run = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-V", "mqttv5",
                          "--cafile", str(mosquitto.pki.ca), "-t", "evidence/site-1/x/record", "-m", "x",
                          "-q", "1"], capture_output=True, text=True, timeout=20)
    assert run.returncode != 0


def test_oversized_publish_is_refused_before_sending(tmp_path: Path) -> None:
    """The broker's Maximum Packet Size (CONNACK) is honoured client-side: an error, not a disconnect."""
    broker = Mosquitto(tmp_path / "b", max_packet_size=4096)
    broker.start()
    try:
        link = _link(broker, "dev-big")
        try:
            assert link.max_packet_size == 4096
            with pytest.raises(UplinkError, match="PACKET_TOO_LARGE"):
                link.publish(DeviceTopics("site-1", "dev-big").record, b"x" * 5000)
            assert link.connected
        finally:
            link.close()
    finally:
        broker.stop()

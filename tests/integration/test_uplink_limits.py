"""Oversized and malformed messages: handled with MQTT v5 reason codes, never silently dropped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import init_identity, load_identity
from agent.signing.verify import verify
from agent.wire.mqtt import MqttLink
from agent.wire.topics import DeviceTopics
from tests.support.broker import Mosquitto
from tests.support.helpers import wait_until
from tests.support.uplink_device import SITE, TestDevice, TestIngest, moment


def test_chunks_fit_the_advertised_maximum_packet_size(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "b", max_packet_size=16384) as broker:
        ingest = TestIngest(tmp_path / "out", broker.mqtt_config("ingest-1"))
        dev = TestDevice(tmp_path / "dev", "dev-mps", broker.mqtt_config("dev-mps"), chunk_bytes=256 * 1024)
        try:
            dev.still(100_000)
            dev.uplink.outbox.enqueue_message("receipt", b"r" * 20_000)  # one message, too big to send
            assert wait_until(lambda: dev.uplink.outbox.stats().rejected == 1)
            assert not dev.uplink.drain(10)  # drained, but something was refused: not "all delivered"
            [rejected] = dev.uplink.outbox.rejected()
            assert rejected["channel"] == "receipt" and "PACKET_TOO_LARGE" in rejected["reason"]
            assert ingest.wait_records("dev-mps", 2, 10)
            verify(tmp_path / "out" / "dev-mps")
            assert dev.uplink.link.connects == 1  # never disconnected for an oversized packet
        finally:
            dev.close()
            ingest.close()


def test_broker_refusal_is_kept_and_oversized_chunks_are_recut(tmp_path: Path) -> None:
    """message_size_limit is not advertised: a PUBACK refusal comes back; media is re-cut, the rest kept."""
    with Mosquitto(tmp_path / "b", message_size_limit=6000) as broker:
        ingest = TestIngest(tmp_path / "out", broker.mqtt_config("ingest-1"))
        dev = TestDevice(tmp_path / "dev", "dev-msl", broker.mqtt_config("dev-msl"), chunk_bytes=16384)
        try:
            dev.still(30_000)
            dev.uplink.outbox.enqueue_message("receipt", b"r" * 10_000)
            assert wait_until(lambda: dev.uplink.outbox.stats().rejected == 1)
            [rejected] = dev.uplink.outbox.rejected()
            assert "0x95" in rejected["reason"], rejected  # mosquitto 2.0: PUBACK 0x95
            assert ingest.wait_records("dev-msl", 2, 20), ingest.ingest.report()
            assert dev.uplink.outbox.chunk_bytes <= 6000
            verify(tmp_path / "out" / "dev-msl")
        finally:
            dev.close()
            ingest.close()


def test_malformed_messages_are_quarantined_with_reason_codes(mosquitto: Mosquitto, tmp_path: Path) -> None:
    ingest = TestIngest(tmp_path / "out", mosquitto.mqtt_config("ingest-1", client_id="ingest-malformed"))
    dev = MqttLink(mosquitto.mqtt_config("dev-mal"), name="dev-mal")
    dev.start()
    assert dev.wait_connected(10)
    topics = DeviceTopics(SITE, "dev-mal")
    # a genuine record of another device, replayed on dev-mal's topic
    init_identity(tmp_path / "other-keys", "dev-other", "Test Customs")
    vault = Vault(tmp_path / "other-vault")
    other = Sealer(vault, load_identity(tmp_path / "other-keys"), device_id="dev-other", site_id=SITE)
    forged = Path(other.start(moment()).record_path).read_bytes()
    vault.close()
    tampered = forged.replace(b'"dev-other"', b'"dev-mal"', 1)
    data = b"chunk"
    good_props = [("item", "a" * 64), ("seq", "1"), ("kind", "still"), ("name", "000000000001.still.jpg"),
                  ("sha256", hashlib.sha256(data).hexdigest()), ("size", "5"), ("index", "0"), ("total", "1"),
                  ("offset", "0")]
    try:
        sends = [
            (topics.record, b"not a sidecar", []),
            (topics.record, forged, []),  # signed, but by dev-other: 0x87
            (topics.record, tampered, []),  # claims dev-mal, signature broken: 0x83
            (topics.media, data, [*good_props, ("chunk", "0" * 64)]),  # chunk hash wrong
            (topics.media, data, good_props),  # chunk hash missing
        ]
        for topic, payload, props in sends:
            assert dev.publish_wait(topic, payload, user_props=props).ok
        assert wait_until(lambda: ingest.ingest.report().get("dev-mal") is not None
                     and ingest.ingest.report()["dev-mal"].refused == len(sends))
        qdir = tmp_path / "out" / ".ingest" / "quarantine" / "dev-mal"
        notes = [json.loads(p.read_text()) for p in qdir.glob("*.json")]
        codes = sorted(n["reason_code"] for n in notes)
        assert codes == sorted([0x99, 0x87, 0x83, 0x99, 0x99]), notes
        assert all(n["problem"] and n["reason"] for n in notes)
        assert not (tmp_path / "out" / "dev-mal" / "items").exists()  # nothing refused was stored
    finally:
        dev.close()
        ingest.close()

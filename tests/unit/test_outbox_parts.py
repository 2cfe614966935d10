"""Chunk properties, chunk sizing, topic ids and uplink settings."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.core.errors import ConfigError
from agent.uplink.settings import UplinkConfig
from agent.wire.chunks import MediaRef, chunk_count, chunk_props, chunk_size_for, fits, parse_chunk, props_dict
from agent.wire.mqtt_settings import BrokerUrl, MqttConfig
from agent.wire.topics import DeviceTopics, check_segment, parse_device_topic, shared

REF = MediaRef(item="a" * 64, seq=7, kind="still", name="000000000007.still.jpg",
               sha256=hashlib.sha256(b"0123456789").hexdigest(), size=10, content_type="image/jpeg")


def test_chunk_round_trip() -> None:
    props = props_dict(chunk_props(REF, 1, 2, 5, b"56789"))
    chunk = parse_chunk(props, b"56789")
    assert (chunk.index, chunk.total, chunk.offset, chunk.item) == (1, 2, 5, "a" * 64)


@pytest.mark.parametrize(("change", "message"), [
    ({"chunk": "0" * 64}, "does not match its SHA-256"),
    ({"index": "2"}, "does not fit"),
    ({"offset": "8"}, "does not fit"),
    ({"total": "x"}, "non-numeric"),
    ({"item": "zz"}, "not a SHA-256"),
])
def test_bad_chunks_are_named(change: dict[str, str], message: str) -> None:
    props = {**props_dict(chunk_props(REF, 1, 2, 5, b"56789")), **change}
    with pytest.raises(ValueError, match=message):
        parse_chunk(props, b"56789")


def test_missing_property_is_named() -> None:
    props = props_dict(chunk_props(REF, 0, 1, 0, b"0123456789"))
    del props["sha256"]
    with pytest.raises(ValueError, match="'sha256'"):
        parse_chunk(props, b"0123456789")


@given(max_packet=st.integers(min_value=4096, max_value=10_000_000), wanted=st.integers(1024, 4_000_000))
def test_chunk_size_always_fits_the_broker_limit(max_packet: int, wanted: int) -> None:
    topic = "evidence/site-1/device-with-a-long-name-0123456789/media"
    size = chunk_size_for(max_packet, topic, wanted)
    assert size <= wanted
    props = chunk_props(REF, 99999, 99999, 10**12, b"")
    assert fits(topic, props, size, max_packet)


def test_chunk_count_edges() -> None:
    assert [chunk_count(n, 10) for n in (0, 1, 10, 11, 20, 21)] == [1, 1, 1, 2, 2, 3]


def test_tiny_broker_limit_is_an_error() -> None:
    with pytest.raises(ValueError, match="no room"):
        chunk_size_for(1500, "evidence/s/d/media", 100_000)


@pytest.mark.parametrize("bad", ["", "+", "#", "a/b", "$SYS", "-x", "a" * 65, "dev ice"])
def test_ids_that_would_break_topics_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_segment(bad, "device id")
    with pytest.raises(ValueError):
        DeviceTopics("site", bad)


def test_topic_helpers() -> None:
    t = DeviceTopics("s1", "d1")
    assert parse_device_topic(t.live("abc")) == ("s1", "d1", "live/abc")
    assert shared("evidence/+/+/record", "g") == "$share/g/evidence/+/+/record"
    assert shared("evidence/+/+/record", None) == "evidence/+/+/record"
    with pytest.raises(ValueError):
        parse_device_topic("other/s1/d1/record")


def test_settings_refuse_unknown_keys_and_missing_tls() -> None:
    mqtt = MqttConfig(broker="mqtt://localhost:1883", client_id="d1")
    with pytest.raises(ValidationError, match="extra"):
        UplinkConfig.model_validate({"mqtt": mqtt, "chunk_size": 1})
    with pytest.raises(ValidationError, match="tls"):
        MqttConfig(broker="mqtts://localhost:8883", client_id="d1")
    with pytest.raises(ValidationError, match="mqtt://host:port"):
        MqttConfig(broker="http://localhost", client_id="d1")
    with pytest.raises(ConfigError, match="bad port"):
        BrokerUrl.parse("mqtt://localhost:99999")
    assert BrokerUrl.parse("mqtts://broker.example").port == 8883

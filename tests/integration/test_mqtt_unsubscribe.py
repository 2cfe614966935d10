"""``MqttLink.unsubscribe`` against a real Mosquitto: the handler goes at once, the broker hears UNSUBSCRIBE now,
or on the next connect when the link was offline (its persistent session would otherwise keep the subscription)."""

from __future__ import annotations

import threading
from pathlib import Path

from agent.wire.mqtt import Inbound, MqttLink
from tests.support.broker import Mosquitto
from tests.support.helpers import wait_for


def unsubscribed(broker: Mosquitto, client: str, topic: str) -> bool:
    return any(line.split(": ", 1)[-1].split() == [client, topic] for line in broker.log_text().splitlines())


def test_unsubscribe_now_and_after_a_reconnect(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker", tls=False)
    broker.conf.write_text(broker.conf.read_text() + "log_type subscribe\nlog_type unsubscribe\n")
    broker.start()
    link = MqttLink(broker.mqtt_config("console", client_id="console"), name="console")
    sender = MqttLink(broker.mqtt_config("device", client_id="device"), name="device")
    got: list[str] = []
    arrived = threading.Event()

    def on(msg: Inbound) -> None:
        got.append(msg.topic)
        arrived.set()

    try:
        for lk in (link, sender):
            lk.start()
            assert lk.wait_connected(10), lk.last_error
        assert link.subscribe_wait("live/a", on, qos=1) == [1]
        assert link.subscribe_wait("live/b", on, qos=1) == [1]
        sender.publish_wait("live/a", b"1", qos=1)
        assert arrived.wait(10)
        assert not link.unsubscribe("live/a", handler=lambda m: None)  # someone else's handler: kept
        assert link.unsubscribe("live/a", on) and link.subscriptions == ["live/b"]
        wait_for(lambda: unsubscribed(broker, "console", "live/a"), timeout=10)
        assert not link.unsubscribe("live/a")  # already gone

        broker.stop()
        wait_for(lambda: not link.connected, timeout=10)
        assert link.unsubscribe("live/b", on) and link.subscriptions == []
        broker.start()  # same persistent session: the broker still holds live/b until told
        assert link.wait_connected(20) and sender.wait_connected(20)
        wait_for(lambda: unsubscribed(broker, "console", "live/b"), timeout=10)
    finally:
        link.close(offline=False)
        sender.close(offline=False)
        broker.stop()

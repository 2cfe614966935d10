"""The load tests' fleet publisher must deliver every message of a burst larger than 65 535.

paho numbers a QoS 1 message when publish() is called and keys its unsent queue by that 16-bit id:
queue more than 65 535 and new messages silently replace queued ones. That, not the ingest, is
where a 100 000-record burst lost ~40 % of its records before they reached the broker.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Mosquitto
from tests.support.sim_fleet import Message, Publisher

COUNT = 70_000  # more than paho's 65 535 packet ids, all handed over at once


def test_burst_beyond_65535_packet_ids_arrives_whole(tmp_path):
    got: set[bytes] = set()
    lock = threading.Lock()

    def on_message(_c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with lock:
            got.add(msg.payload)

    with Mosquitto(tmp_path / "broker", tls=False) as broker:
        sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="count", protocol=paho.MQTTv5)
        sub.on_message = on_message
        subscribed = threading.Event()
        sub.on_subscribe = lambda *_a: subscribed.set()
        sub.on_connect = lambda c, *_a: c.subscribe("load/#", qos=1)
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        assert subscribed.wait(10)
        pub = Publisher("127.0.0.1", broker.port, "fleet-pub", inflight=500)
        try:
            msgs = [Message("load/t", str(i).encode(), (), str(i), True) for i in range(COUNT)]
            assert pub.send(msgs) == COUNT
            assert pub.wait_acked(COUNT, 120), f"broker acknowledged {pub.acked}/{COUNT}"
            assert pub.failed == 0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with lock:
                    if len(got) >= COUNT:
                        break
                time.sleep(0.2)
        finally:
            pub.close()
            sub.loop_stop()
            sub.disconnect()
    assert len(got) == COUNT, f"{COUNT - len(got)} of {COUNT} messages never arrived"

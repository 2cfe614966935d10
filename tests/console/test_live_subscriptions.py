"""A closed live page releases its session's subscription: the console process unsubscribes at the broker
(Mosquitto's own log says so), whether the page said stop or just went away. Device process, console process and
Mosquitto with TLS; the pages are plain WebSocket clients."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.support.console_stack import ConsoleStack, build_console_stack
from tests.support.helpers import wait_for

SITE = "site-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleStack, str]]:
    st = build_console_stack(tmp_path_factory.mktemp("console-subs"))
    try:
        st.broker.stop()  # the same broker, now logging every SUBSCRIBE and UNSUBSCRIBE
        st.broker.conf.write_text(st.broker.conf.read_text() + "log_type subscribe\nlog_type unsubscribe\n")
        st.broker.start()
        st.start_device(st.device_config("cam-1", SITE, width=320, height=180, fps=10))
        _proc, url = st.start_console("officer-alice")
        yield st, url
    finally:
        st.close()


def broker_subscriptions(st: ConsoleStack) -> tuple[set[str], set[str]]:
    """Topics subscribed and unsubscribed (Mosquitto logs "<client> <qos> <topic>" and "<client> <topic>")."""
    subscribed, unsubscribed = set(), set()
    for line in st.broker.log_text().splitlines():
        words = line.split(": ", 1)[-1].split()
        if words and "/live/" in words[-1]:
            if len(words) == 3 and words[1].isdigit():
                subscribed.add(words[2])
            elif len(words) == 2:
                unsubscribed.add(words[1])
    return subscribed, unsubscribed


def watch(url: str, *, say_stop: bool) -> str | None:
    """Open a live page, wait for a verified fragment, leave; the session's topic (None: the device did not
    answer the start yet)."""
    with connect(url.replace("http://", "ws://") + f"/ws/live/{SITE}/cam-1", open_timeout=30) as ws:
        started: dict[str, Any] = {}
        while started.get("t") != "started":
            msg = ws.recv(timeout=30)
            assert isinstance(msg, str)
            started = json.loads(msg)
            if started.get("t") == "error" and "no reply" in started.get("message", ""):
                return None
            assert started.get("t") != "error", started
        while not isinstance(ws.recv(timeout=30), bytes):  # the stream flows: a verified fragment arrived
            pass
        if say_stop:
            ws.send(json.dumps({"t": "stop"}))
    return f"evidence/{SITE}/cam-1/live/{started['session']}"


def device_online(url: str) -> bool:
    with urllib.request.urlopen(url + "/api/devices", timeout=5) as r:
        return any(d["device"] == "cam-1" and d["online"] for d in json.load(r)["devices"])


def test_each_closed_page_unsubscribes_its_session(stack: tuple[ConsoleStack, str]) -> None:
    st, url = stack
    wait_for(lambda: device_online(url), timeout=60)
    topics: list[str] = []

    def watched(say_stop: bool) -> bool:
        topic = watch(url, say_stop=say_stop)
        if topic is not None:
            topics.append(topic)
        return topic is not None

    wait_for(lambda: watched(True), timeout=120)  # online comes just before the device takes commands
    assert watched(False) and watched(False)
    assert len(set(topics)) == 3 and all(re.fullmatch(r"evidence/site-1/cam-1/live/[0-9a-f]{24}", t) for t in topics)
    wait_for(lambda: set(topics) <= broker_subscriptions(st)[1], timeout=30)
    subscribed, unsubscribed = broker_subscriptions(st)
    assert set(topics) <= subscribed
    assert subscribed - unsubscribed == set()  # nothing left behind, the JPEG fallback's first try included

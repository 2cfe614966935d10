"""An officer leaves a command retained on a device's command topic: the device does not execute it.

The broker cannot refuse the retain flag to one account (Mosquitto 2.0's ACL has no retain rule); the ACL
confines officers to registered devices' command topics (one retained message each at most, test_broker_acl),
and the device drops any command delivered as retained: a command is meant for the moment it is sent, a
retained one comes back on every reconnect. Before: a retained command was executed like a live one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from agent.wire.commands import canonical, sign_command
from agent.wire.mqtt import Inbound
from agent.wire.topics import DeviceTopics
from tests.support.command_stack import DEVICE, SITE, Stack, build_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = build_stack(tmp_path_factory.mktemp("retained-cmd"))
    yield s
    s.close()


def _marks(stack: Stack) -> int:
    return len(list((stack.vault.path / "items").glob("*/*.mark.rec")))


def test_a_retained_command_is_not_executed(stack: Stack) -> None:
    key = stack.officer_keys["officer-alice"]
    now_ms = time.time_ns() // 1_000_000  # the stack's device runs on the system clock
    wire = sign_command(key.private_key, officer="officer-alice", device=DEVICE, command="mark",
                        args={"note": "left retained"}, now_ms=now_ms, ttl_s=300)
    topic = DeviceTopics(SITE, DEVICE).cmd
    before = _marks(stack)
    stack.service.controller.on_message(Inbound(topic, canonical(wire), 1, True))  # as a (re)subscribe delivers it
    assert _marks(stack) == before, "a retained command was executed"
    live = sign_command(key.private_key, officer="officer-alice", device=DEVICE, command="mark",
                        args={"note": "live"}, now_ms=now_ms, ttl_s=300)
    stack.service.controller.on_message(Inbound(topic, canonical(live), 1, False))
    assert _marks(stack) == before + 1, "a live command is executed"

"""Flow control of the ingest's receive path: bounded in flight, acknowledged only once stored."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from agent.customs.flow import FlowLimits, Intake
from agent.wire.messages import Inbound
from tests.support.helpers import wait_until


def _msg(i: int, size: int = 10) -> Inbound:
    return Inbound(topic=f"evidence/s/d/record/{i}", payload=b"x" * size, qos=1, retain=False)


def test_room_closes_at_the_window_and_reopens_as_batches_are_stored() -> None:
    gate = threading.Event()
    stored: list[str] = []
    acked: list[int] = []

    def handle(msgs: Sequence[Inbound]) -> list[bool]:
        gate.wait(10)
        stored.extend(m.topic for m in msgs)
        return [True] * len(msgs)

    intake = Intake(handle, limits=FlowLimits(window=4, batch=2))
    intake.start(lambda mid, qos: acked.append(mid))
    try:
        for i in range(4):
            intake.offer(_msg(i), i + 1, 1)
        assert not intake.has_room(0.05)  # full: the link stops reading
        assert acked == []  # nothing acknowledged before it is stored
        gate.set()
        assert wait_until(lambda: len(acked) == 4, 10)
        assert intake.has_room(0.05)
        assert acked == [1, 2, 3, 4] and len(stored) == 4
    finally:
        intake.close()


def test_byte_bound_closes_room_too() -> None:
    intake = Intake(lambda msgs: [True] * len(msgs), limits=FlowLimits(window=100, window_bytes=100))
    intake.offer(_msg(0, 150), 1, 1)  # not started: nothing drains
    assert not intake.has_room(0.01)
    intake.close()


def test_a_failing_message_is_retried_and_never_acknowledged_until_stored() -> None:
    attempts: dict[str, int] = {}
    acked: list[int] = []

    def handle(msgs: Sequence[Inbound]) -> list[bool]:
        out = []
        for m in msgs:
            attempts[m.topic] = attempts.get(m.topic, 0) + 1
            if m.topic.endswith("/1") and attempts[m.topic] < 3:
                raise OSError("disk full")
            out.append(True)
        return out

    intake = Intake(handle, limits=FlowLimits(window=10, batch=5, retry_min_s=0.01, retry_max_s=0.02))
    intake.start(lambda mid, qos: acked.append(mid))
    try:
        for i in range(3):
            intake.offer(_msg(i), i + 1, 1)
        assert wait_until(lambda: sorted(acked) == [1, 2, 3], 10)
        assert attempts["evidence/s/d/record/1"] == 3
        assert intake.stats.retries >= 1 and intake.in_flight == 0
    finally:
        intake.close()


def test_a_busy_message_goes_first_into_the_next_batch_without_backoff_and_unacknowledged() -> None:
    seen: list[list[str]] = []
    acked: list[int] = []

    def handle(msgs: Sequence[Inbound]) -> list[bool | None]:
        seen.append([m.topic[-1] for m in msgs])
        # the first time, message 1's device is held by another worker of the group
        return [None if m.topic.endswith("/1") and len(seen) == 1 else True for m in msgs]

    intake = Intake(handle, limits=FlowLimits(window=10, batch=2, retry_min_s=60))  # a backoff would hang here
    for i in range(3):
        intake.offer(_msg(i), i + 1, 1)
    intake.start(lambda mid, qos: acked.append(mid))
    try:
        assert wait_until(lambda: len(acked) == 3, 10)
        assert seen[:2] == [["0", "1"], ["1", "2"]]  # handed back, then first in line
        assert acked[0] == 1 and sorted(acked) == [1, 2, 3]  # 2 acknowledged only once stored
        assert intake.stats.deferred == 1 and intake.stats.retries == 0
    finally:
        intake.close()

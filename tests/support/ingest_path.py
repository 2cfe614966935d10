"""Messages into an ``Ingest`` the way ``evidence-officer ingest`` feeds it: flow control (``Intake``) calling
``Ingest.handle_batch`` (lock-free precheck, staged sidecars, one transaction), acknowledged once stored."""

from __future__ import annotations

import threading

from agent.customs.cli import attach_intake
from agent.customs.flow import FlowLimits
from agent.customs.ingest import Ingest
from agent.wire.mqtt import Inbound


class _Link:
    """The two things ``attach_intake`` needs from an MqttLink; ``ack`` records acknowledgements."""

    name = "test-link"

    def __init__(self) -> None:
        self.acked: set[int] = set()
        self.cond = threading.Condition()

    def set_receiver(self, _receiver: object, _window: int) -> None:
        pass

    def ack(self, token: int, _qos: int) -> None:
        with self.cond:
            self.acked.add(token)
            self.cond.notify_all()


def deliver(ingest: Ingest, *msgs: Inbound, batch: int = FlowLimits.batch, timeout: float = 60.0) -> None:
    """Offer ``msgs`` in order and return once every one is acknowledged (stored, refused or quarantined)."""
    link = _Link()
    intake = attach_intake(link, ingest, FlowLimits(batch=batch))  # type: ignore[arg-type]
    try:
        for token, msg in enumerate(msgs, 1):
            intake.offer(msg, token, 1)
        with link.cond:
            if not link.cond.wait_for(lambda: len(link.acked) == len(msgs), timeout):
                raise AssertionError(f"{len(msgs) - len(link.acked)} of {len(msgs)} messages never acknowledged")
    finally:
        intake.close()

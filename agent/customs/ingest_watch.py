"""Supervision of ``evidence-officer ingest``: a dead worker or a store that keeps failing ends the process.

Every worker the ingest starts (the link's handler thread, the intake's store worker) reports its death to
one :class:`~agent.core.supervisor.Supervisor`; none of them is restarted in-process (their queues are in
memory), so a death stops the ingest and it exits non-zero: unacknowledged messages stay in the broker's
session queue and come again after systemd's ``Restart=``. A store that fails on every retry (full or failing
disk) for ``stall_exit_s`` escalates the same way, as does one that stores nothing for ten times as long
while messages wait (a hung filesystem): never a live ingest that silently stopped storing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from agent.core.health import Health
from agent.core.supervisor import EXIT_SUPERVISION, Supervisor
from agent.core.threads import set_default_owner, set_owner
from agent.customs.flow import Intake

log = logging.getLogger(__name__)

STALL_EXIT_S = 30.0
HUNG_FACTOR = 10


class IngestWatch:
    """Create before the link and the intake (their workers report here); ``check()`` from the main loop."""

    def __init__(self, stop: threading.Event, stall_exit_s: float = STALL_EXIT_S) -> None:
        self.stop = stop
        self.stall_exit_s = stall_exit_s
        self.health = Health()
        self.supervisor = Supervisor("ingest", escalate=self._escalate, health=self.health)
        self.supervisor.own(default=True)
        self.supervisor.start()
        self._intake: Intake | None = None
        self._progress_mono = time.monotonic()
        self._acked = 0
        self._retries = 0
        self._failing = False

    def _escalate(self, reason: str) -> None:
        log.critical("ingest: giving up: %s; exiting %d so that the service is restarted (unacknowledged "
                     "messages stay queued at the broker)", reason, EXIT_SUPERVISION)
        self.stop.set()

    def watch_intake(self, intake: Intake) -> None:
        self._intake = intake
        self.health.check("store", self._store_health)

    def _store_health(self) -> str | None:
        intake = self._intake
        if intake is None:
            return None
        stats, now = intake.stats, time.monotonic()
        if stats.acked != self._acked or intake.in_flight == 0:
            self._acked, self._retries, self._failing = stats.acked, stats.retries, False
            self._progress_mono = now
            return None
        if stats.retries != self._retries:
            self._failing = True
        waited = now - self._progress_mono
        if self._failing:
            return f"{intake.in_flight} message(s) waiting; every store attempt failed for {waited:.0f} s"
        if waited >= self.stall_exit_s:
            return f"{intake.in_flight} message(s) waiting; nothing stored for {waited:.0f} s"
        return None

    @property
    def failed(self) -> str | None:
        return self.supervisor.failed

    def check(self) -> None:
        """Escalate a store failing for ``stall_exit_s`` (or hung for ten times that); cheap, call often."""
        if self.stall_exit_s <= 0 or self.failed is not None:
            return
        state = self.health.unhealthy().get("store")
        if state is None:
            return
        waited = time.monotonic() - self._progress_mono
        if (self._failing and waited >= self.stall_exit_s) or waited >= self.stall_exit_s * HUNG_FACTOR:
            self.supervisor.give_up(f"store: {state.reason}")

    def report(self) -> dict[str, Any]:
        doc = self.health.report()
        doc["failed"] = self.failed
        return doc

    def close(self) -> None:
        self.supervisor.close()
        set_owner(None)
        set_default_owner(None)

"""Two of the running agent's watch loops: the enclosure's tamper switch and button, and the clock.

Each runs on its own supervised worker (``Agent.start``) and turns what it sees into sealed records: a tamper
switch change, a button's still or mark, a clock jump or a GPS/system time disagreement (alerts with an uplink).
"""

from __future__ import annotations

import logging
import queue
from dataclasses import replace
from typing import TYPE_CHECKING

from agent.core.errors import AgentError
from agent.gps.timequality import ClockWatch
from agent.hardware.gpio import ButtonEvent, TamperEvent

if TYPE_CHECKING:
    from agent.device.runtime import Agent

log = logging.getLogger(__name__)


def seal_device_events(agent: Agent, events: queue.Queue[TamperEvent | ButtonEvent | None]) -> None:
    """Tamper switch and button events arrive on gpiozero's threads; seal them here."""
    while (ev := events.get()) is not None:
        try:
            moment = replace(agent.sensors.moment(), wall_ns=ev.wall_ns, mono_ns=ev.mono_ns)
            if isinstance(ev, TamperEvent):
                log.warning("enclosure tamper switch: %s", ev.state)
                agent.store.seal("tamper", moment, extra=ev.as_extra())
            elif ev.action == "snapshot":
                agent.take_still("button")
            else:
                agent.store.seal("mark", moment, extra={"source": "button", "pin": ev.pin,
                                                        "note": "button pressed at the device"})
        except AgentError as exc:
            log.error("could not seal device event %s: %s", ev, exc)
            agent.stats.errors.append(str(exc))


def watch_clock(agent: Agent) -> None:
    """Clock jumps and GPS/system disagreement become sealed events (and, with an uplink, alerts)."""
    watch = ClockWatch.from_config(agent.clock, agent.cfg.time)
    while not agent.stop_event.wait(2.0):
        moment = agent.sensors.moment()
        for alarm in watch.observe(moment):
            log.warning("clock alarm: %s", alarm.as_record())
            try:
                agent.store.seal("event", moment, extra={"type": "clock_alarm", "phase": "onset",
                                                         **alarm.as_record()})
            except AgentError as exc:
                log.error("could not seal clock alarm: %s", exc)

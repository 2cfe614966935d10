"""`run` and `demo`: start the agent, wait, drain, and print the summary; the exit code says what happened."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

from agent.core.errors import ConfigError
from agent.core.supervisor import EXIT_SUPERVISION
from agent.device.config import AgentConfig

log = logging.getLogger("evidence-agent")


def _install_signal_handlers(stop: object) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.stop()  # type: ignore[attr-defined]

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_agent(cfg: AgentConfig, seconds: float | None, drain_timeout: float | None = None) -> int:
    """Run until the time is up, the source ends or a signal; with ``drain_timeout``, wait for delivery.

    Exit 1 when evidence was left undelivered (pending or rejected) at the drain timeout, or the camera failed;
    exit 70 when a part died or stayed unhealthy and could not be restarted (systemd's Restart= brings it back).
    """
    from agent.core.memory import limit_malloc_arenas
    from agent.device.runtime import Agent
    from agent.device.summary import drain_line, run_summary

    preflight_or_exit(cfg)
    limit_malloc_arenas()
    agent = Agent(cfg)
    _install_signal_handlers(agent)
    drained = True
    try:
        agent.start()
        agent.run(seconds)
        if drain_timeout is not None and agent.uplink is not None:
            agent.stop_capture()
            print(f"capture stopped; waiting up to {drain_timeout:g} s for the broker to acknowledge everything")
            drained = _drain(agent, drain_timeout)
            print(drain_line(drained, agent.uplink.outbox.stats()))
    finally:
        agent.close()
    for line in run_summary(agent, cfg):
        print(line)
    if agent.failed is not None:
        return EXIT_SUPERVISION
    if not drained or agent.hub.error is not None:
        return 1
    return 1 if agent.stats.errors and not agent.stats.sealed else 0


def preflight_or_exit(cfg: AgentConfig) -> None:
    """What the service needs before it starts (files, key, certificate); ConfigError names the first problem."""
    from agent.device.preflight import preflight

    problems = [p for p in preflight(cfg) if p.fatal]
    if problems:
        raise ConfigError("; ".join(p.text for p in problems))


def _drain(agent: Any, timeout: float) -> bool:
    """agent.drain() in short steps, so a terminal shows how much is still waiting for the broker."""
    import time

    from agent.signing.progress import Progress

    uplink = agent.uplink
    if uplink is None:
        return True
    deadline = time.monotonic() + timeout
    first = uplink.outbox.stats()
    total = max(1, first.pending + first.in_flight)
    with Progress("uploading", total, unit="entries") as bar:
        while True:
            step = min(0.5, max(0.0, deadline - time.monotonic()))
            if agent.drain(step):
                return True
            s = uplink.outbox.stats()
            left = s.pending + s.in_flight
            if left == 0:  # nothing waits: only refusals (rejected entries) keep it from being drained
                return bool(s.rejected == 0)
            total = max(total, left)
            bar.update(total - left, total)
            if time.monotonic() >= deadline:
                return False

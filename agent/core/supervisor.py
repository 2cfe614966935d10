"""The owner of a process's workers: a death is logged, reported, then the part restarts or the process exits.

Every :class:`~agent.core.threads.Worker` created while a supervisor is the owner reports its death here (on
the dying thread, through a queue: nothing blocks there). The supervisor's own thread wakes on that report
and applies the part's policy:

* :class:`Restart` -- the owner said the part is safe to restart (its state is durable, e.g. the outbox's
  SQLite store): after a backoff (doubling, bounded) ``restart()`` is called; more than ``max_restarts``
  deaths within ``window_s`` escalate.
* anything else escalates: ``escalate(reason)`` is called once, and the process is expected to stop and
  exit non-zero so systemd's ``Restart=`` brings it back (:attr:`Supervisor.failed` holds the reason).

``on_death(death, action)`` is called before the action (the device seals an ``internal_error`` event).
A dead worker is marked unhealthy in :class:`~agent.core.health.Health` until it is restarted; whether the
restarted part works is for the owner's own health checks to say.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.core.health import Health
from agent.core.threads import Worker, set_default_owner, set_owner

log = logging.getLogger(__name__)

EXIT_SUPERVISION = 70  # EX_SOFTWARE: a part died and could not be restarted


@dataclass(frozen=True)
class Restart:
    """Restart after ``backoff_s[0]`` doubling up to ``backoff_s[1]``; too many deaths escalate."""

    restart: Callable[[], None]
    backoff_s: tuple[float, float] = (0.5, 8.0)
    max_restarts: int = 5
    window_s: float = 120.0


@dataclass(frozen=True)
class Death:
    """One unexpected end of a worker."""

    part: str
    error: str
    at_mono: float


class Supervisor:
    """Watches the workers created under it; see the module docstring for the policy."""

    def __init__(self, name: str, *, escalate: Callable[[str], None],
                 on_death: Callable[[Death, str], None] | None = None, health: Health | None = None) -> None:
        self.name = name
        self.health = health or Health()
        self._escalate = escalate
        self._on_death = on_death
        self._policies: dict[str, Restart] = {}
        self._deaths: dict[str, deque[float]] = {}
        self._queue: queue.Queue[Death | None] = queue.Queue()
        self._lock = threading.Lock()
        self.failed: str | None = None
        self.restarts = 0
        self.deaths: list[Death] = []
        self._stop = threading.Event()
        self._thread = Worker(f"{name}-supervisor", self._run, stopping=self._stop)
        self._thread.owner = None  # never its own owner
        self._started = False

    # -- setup ----------------------------------------------------------------------------------
    def restartable(self, part: str, policy: Restart) -> None:
        """Declare that the worker named ``part`` may be restarted with ``policy`` (default: escalate)."""
        with self._lock:
            self._policies[part] = policy

    def own(self, default: bool = False) -> None:
        """Own the workers the calling thread creates from now on (and, with ``default``, the process's)."""
        set_owner(self)
        if default:
            set_default_owner(self)

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def close(self) -> None:
        """Stop watching (deaths during shutdown are logged only); idempotent."""
        self._stop.set()
        self._queue.put(None)
        if self._started:
            self._thread.stop(30)

    # -- reports (the dying thread) -------------------------------------------------------------
    def worker_died(self, worker: Worker, error: BaseException) -> None:
        if self._stop.is_set():
            return  # stopping: the owner's close() sees it
        death = Death(worker.name, f"{type(error).__name__}: {error}", time.monotonic())
        self.health.fail(worker.name, f"died: {death.error}")
        self._queue.put(death)

    # -- the supervisor's thread ----------------------------------------------------------------
    def _run(self, stopping: threading.Event) -> None:
        while (death := self._queue.get()) is not None:
            if stopping.is_set():
                return
            try:
                self._handle(death, stopping)
            except Exception as exc:  # the watcher must not die of what it watches
                log.exception("supervisor %s: handling the death of %s failed", self.name, death.part)
                self.give_up(f"supervisor failed handling {death.part}: {exc}")

    def _handle(self, death: Death, stopping: threading.Event) -> None:
        self.deaths.append(death)
        with self._lock:
            policy = self._policies.get(death.part)
        recent = self._deaths.setdefault(death.part, deque())
        recent.append(death.at_mono)
        if policy is not None:
            while recent and death.at_mono - recent[0] > policy.window_s:
                recent.popleft()
        action = "restart" if policy is not None and len(recent) <= policy.max_restarts else "exit"
        log.error("%s: worker %s died (%s); %s", self.name, death.part, death.error,
                  "restarting it" if action == "restart" else "the process exits non-zero for systemd to restart")
        if self._on_death is not None:
            try:
                self._on_death(death, action)
            except Exception:
                log.exception("%s: could not record the death of %s", self.name, death.part)
        if action == "exit" or policy is None:
            self.give_up(f"worker {death.part} died: {death.error}"
                          + ("" if policy is None else f" ({len(recent)} times within {policy.window_s:g} s)"))
            return
        low, high = policy.backoff_s
        delay = min(high, low * 2 ** (len(recent) - 1))
        if stopping.wait(delay):
            return
        set_owner(self)  # the new worker reports here too
        policy.restart()
        self.restarts += 1
        self.health.ok(death.part)  # the thread runs again; whether it works is the owner's health check
        log.warning("%s: worker %s restarted (after %.1f s)", self.name, death.part, delay)

    def give_up(self, reason: str) -> None:
        """Escalate once (thread-safe): record ``reason`` and call ``escalate``."""
        with self._lock:
            if self.failed is not None:
                return
            self.failed = reason
        self.health.fail(self.name, reason)
        self._escalate(reason)

"""The one way this project starts a thread: named, with a stop event, and a stop() that proves it ended.

Modelled on gpiozero's ``GPIOThread``/``ZombieThread``: a thread that does not end when asked is a bug
(a hung camera read, a blocked socket), so :meth:`Worker.stop` raises instead of returning as if all were
well. ``stop()`` is idempotent and may be called on a worker that never started.

A worker that dies on an exception is reported to its *owner* (:class:`agent.core.supervisor.Supervisor`):
the owner in charge of the thread that created it (inherited by the threads it starts), else the process's
default owner. With no owner at all the death is only logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Owner(Protocol):
    """What watches workers: told, on the dying thread, of each death; must not block."""

    def worker_died(self, worker: Worker, error: BaseException) -> None: ...


_local = threading.local()
_default: list[Owner] = []


def current_owner() -> Owner | None:
    """The owner new workers created on this thread report to."""
    owner: Owner | None = getattr(_local, "owner", None)
    return owner if owner is not None else (_default[-1] if _default else None)


def set_owner(owner: Owner | None) -> Owner | None:
    """Make ``owner`` watch the workers this thread creates from now on; returns the previous one."""
    prev: Owner | None = getattr(_local, "owner", None)
    _local.owner = owner
    return prev


def set_default_owner(owner: Owner | None) -> None:
    """The process-wide owner (a CLI's supervisor) for workers created where no thread owner is set."""
    _default.clear()
    if owner is not None:
        _default.append(owner)


class ZombieThread(RuntimeError):
    """A worker did not end within its stop timeout."""


class Worker(threading.Thread):
    """A named daemon thread running ``target(stopping, *args)``; ``stopping`` is set by :meth:`stop`.

    The target should return soon after ``stopping`` is set (wait on it instead of ``time.sleep``).
    An owner that already has a stop event (shared by several loops, or set before the thread starts)
    passes it as ``stopping``.
    """

    def __init__(self, name: str, target: Callable[..., Any], *args: Any, daemon: bool = True,
                 stopping: threading.Event | None = None) -> None:
        super().__init__(name=name, daemon=daemon)
        self.stopping = threading.Event() if stopping is None else stopping
        self._fn = target
        self._args = args
        self.error: BaseException | None = None
        self.owner = current_owner()

    def run(self) -> None:
        set_owner(self.owner)  # workers this one starts have the same owner
        try:
            self._fn(self.stopping, *self._args)
        except BaseException as exc:  # recorded for the owner; a thread's exception is otherwise lost
            self.error = exc
            log.exception("thread %s failed", self.name)
            if self.owner is not None:
                try:
                    self.owner.worker_died(self, exc)
                except Exception:
                    log.exception("could not report the death of thread %s", self.name)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to end and wait for it; raises :class:`ZombieThread` if it does not."""
        self.stopping.set()
        if threading.current_thread() is self or not self.is_alive():
            return
        self.join(timeout)
        if self.is_alive():
            raise ZombieThread(f"thread {self.name!r} did not stop within {timeout:g} s")


def join_or_raise(thread: threading.Thread | None, timeout: float = 10.0) -> None:
    """Join a thread that was already told to stop (by closing its source, a sentinel ...), or raise.

    For threads whose stop signal is not an Event (a paho loop, a queue sentinel), so every join in the
    project checks that the thread really ended.
    """
    if thread is None or thread is threading.current_thread() or not thread.is_alive():
        return
    thread.join(timeout)
    if thread.is_alive():
        raise ZombieThread(f"thread {thread.name!r} did not stop within {timeout:g} s")


def stop_all(workers: Iterable[Worker], timeout: float = 10.0) -> None:
    """Stop several workers: all are told first, each is joined; raises one :class:`ZombieThread` naming all
    that did not end, after every other has been joined (a hung one never keeps the rest running)."""
    ws = list(workers)
    for w in ws:
        w.stopping.set()
    zombies: list[str] = []
    for w in ws:
        try:
            w.stop(timeout)
        except ZombieThread:
            zombies.append(w.name)
    if zombies:
        raise ZombieThread(f"thread(s) {', '.join(map(repr, zombies))} did not stop within {timeout:g} s")

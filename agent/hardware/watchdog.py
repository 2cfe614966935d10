"""systemd notify protocol (READY/WATCHDOG/STATUS/STOPPING) and a watchdog fed only while the service works.

The keep-alive is not sent because a timer fires but because the capture loop recently called
:meth:`Watchdog.heartbeat` **and** the ``healthy`` probe finds every other essential part working (the
runtime's: outbox dispatching or idle, sealer sealing, recorder running). When the loop stalls (camera hang,
deadlock) or a part fails, the keep-alives stop, systemd's ``WatchdogSec=`` expires and it restarts the
service -- the whole point of Type=notify.
The protocol is one datagram per message on the unix socket named by ``$NOTIFY_SOCKET``
(``@`` = abstract namespace), small enough to implement here without a dependency.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

from agent.core.clock import Clock
from agent.core.threads import Worker

log = logging.getLogger(__name__)


class SdNotifier:
    """Sends sd_notify messages; a silent no-op when not started by systemd (no $NOTIFY_SOCKET)."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *fields: str) -> bool:
        """Send ``FIELD=value`` lines as one datagram; False (logged) if it could not be sent."""
        if not self.enabled:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        payload = "\n".join(fields).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(payload, socket.MSG_DONTWAIT, target)  # a listener not reading never blocks us
                return True
            except OSError as exc:
                log.warning("sd_notify to %s failed: %s", self.address, exc)
                return False

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Half of systemd's ``WatchdogSec`` (``$WATCHDOG_USEC``), or None when no watchdog is asked for us."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    wd_pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (wd_pid and wd_pid != str(os.getpid() if pid is None else pid)):
        return None
    return usec / 2e6


class Watchdog:
    """Feeds systemd's watchdog from a named thread while heartbeats are fresh."""

    def __init__(
        self,
        notifier: SdNotifier,
        clock: Clock,
        *,
        stale_after_s: float = 10.0,
        interval_s: float | None = None,
        healthy: Callable[[], str | None] | None = None,
    ) -> None:
        self.notifier = notifier
        self.clock = clock
        self.stale_after_ns = int(stale_after_s * 1e9)
        self.interval_s = interval_s if interval_s is not None else (watchdog_interval_s() or 5.0)
        self._last_beat = clock.mono_ns()
        self._stalled = False
        self._healthy = healthy
        self._unhealthy: str | None = None
        self._stop = threading.Event()
        self._thread: Worker | None = None
        self.fed = 0  # keep-alives sent, for status and tests

    def heartbeat(self) -> None:
        """Called by the capture loop for each frame it handles; cheap and thread-safe."""
        self._last_beat = self.clock.mono_ns()

    def ready(self, status: str = "capturing") -> None:
        """Tell systemd start-up is complete (``Type=notify``)."""
        self.heartbeat()
        self.notifier.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def tick(self) -> bool:
        """One check: send ``WATCHDOG=1`` if the loop beat recently and all parts are healthy; else withhold it."""
        age_ns = self.clock.mono_ns() - self._last_beat
        reason = self._healthy() if self._healthy is not None and age_ns <= self.stale_after_ns else None
        if reason != self._unhealthy:
            self._unhealthy = reason
            if reason is not None:
                log.error("unhealthy: %s; not feeding the systemd watchdog", reason)
                self.notifier.notify(f"STATUS=unhealthy: {reason[:200]}")
            else:
                self.notifier.notify("STATUS=capturing (healthy again)")
        if reason is not None:
            return False
        if age_ns <= self.stale_after_ns:
            if self._stalled:
                self._stalled = False
                self.notifier.notify("STATUS=capturing (recovered)")
            self.notifier.notify("WATCHDOG=1")
            self.fed += 1
            return True
        if not self._stalled:
            self._stalled = True
            log.error("capture loop silent for %.1f s; no longer feeding the systemd watchdog", age_ns / 1e9)
            self.notifier.notify(f"STATUS=capture loop stalled for {age_ns / 1e9:.0f} s")
        return False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = Worker("sd-watchdog", self._run, stopping=self._stop)
        self._thread.start()

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            self.tick()
            stopping.wait(self.interval_s)

    def close(self, status: str = "stopping") -> None:
        """Stop feeding, tell systemd we are stopping on purpose; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.stop(10)
        self.notifier.notify("STOPPING=1", f"STATUS={status}")
        self.notifier.close()

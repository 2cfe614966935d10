"""The device's essential parts as the health registry judges them, besides worker deaths.

The outbox (dispatcher running, its last turn succeeded, not hung), the MQTT network thread (paho's, not a
Worker), the video recorder and the sealer (the last seal reached storage). The runtime feeds the systemd
watchdog only while all are healthy, and gives up (exit 70) on one unhealthy for ``UNHEALTHY_EXIT_S``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any

from agent.core.errors import VaultError
from agent.core.health import Health
from agent.core.model import Moment, SealedItem
from agent.core.supervisor import Restart, Supervisor
from agent.device.quota import QuotaSealer
from agent.evidence.vault import VaultFullError

if TYPE_CHECKING:
    from agent.uplink.service import Uplink
    from agent.video.service import VideoService

UNHEALTHY_EXIT_S = 30.0  # an essential part unhealthy this long ends the process (exit non-zero)
OUTBOX_HUNG_S = 30.0  # a dispatcher turn takes well under a second; this long means it hangs


class WatchedSealer(QuotaSealer):
    """The quota sealer that reports to the health registry: a seal failing in storage marks it unhealthy.

    What could not be sealed while storage failed is itself sealed once a seal succeeds again: a
    ``storage_error`` event (phase ``end``) captured at the first failure (a lost segment's start), naming
    the kinds lost and the last error, so a verifier sees why the recording has a hole instead of an
    unexplained one.
    """

    def __init__(self, *args: Any, health: Health, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._health = health
        self._lock = threading.Lock()
        self._first: Moment | None = None
        self._lost: dict[str, int] = {}
        self._last_error = ""

    def seal(self, kind: str, moment: Moment, **kwargs: Any) -> SealedItem:
        try:
            item = super().seal(kind, moment, **kwargs)
        except VaultFullError:
            raise  # the quota policy at work (sealed as vault_full), not a broken sealer
        except (OSError, sqlite3.Error, VaultError) as exc:  # storage failing (a caller's bad value is not)
            self._health.fail("sealer", f"{type(exc).__name__}: {exc}")
            with self._lock:  # a lost segment's own start time lies inside the hole it leaves: preferred
                if self._first is None or (kind == "segment" and "segment" not in self._lost):
                    self._first = moment
                self._lost[kind] = self._lost.get(kind, 0) + 1
                self._last_error = f"{type(exc).__name__}: {exc}"[:500]
            raise
        self._health.ok("sealer")
        self._seal_recovery()
        return item

    def _seal_recovery(self) -> None:
        with self._lock:
            first, lost, err = self._first, self._lost, self._last_error
            self._first, self._lost = None, {}
        if first is None:
            return
        try:
            super().seal("event", first, extra={"type": "storage_error", "phase": "end", "not_sealed": lost,
                                                "last_error": err})
        except Exception as exc:  # storage failing again: the next success tries again
            with self._lock:
                self._first = self._first or first
                for k, n in lost.items():
                    self._lost[k] = self._lost.get(k, 0) + n
            self._health.fail("sealer", f"{type(exc).__name__}: {exc}")


def watch_parts(parts: Health, supervisor: Supervisor, uplink: Uplink | None, video: VideoService | None) -> None:
    """Register the probes, and the outbox dispatcher as the one worker restarted in-process."""
    if uplink is not None:
        outbox, link = uplink.outbox, uplink.link
        supervisor.restartable("outbox-dispatch", Restart(outbox.restart))

        def outbox_health() -> str | None:
            if not outbox.dispatching:
                return None if outbox.stopped else f"dispatcher not running: {outbox.last_error or 'died'}"
            if outbox.last_error is not None:  # cleared by the first full turn after a restart
                return f"store failing: {outbox.last_error}"
            hung = time.monotonic() - outbox.loop_mono
            return None if hung < OUTBOX_HUNG_S else f"dispatcher has not turned for {hung:.0f} s"

        def link_health() -> str | None:
            thread = getattr(getattr(link, "_client", None), "_thread", None)
            alive = thread is None or not isinstance(thread, threading.Thread) or thread.is_alive()
            return None if alive else "the MQTT network thread ended: no reconnects, nothing sent"

        parts.check("outbox", outbox_health)
        parts.check("uplink", link_health)
    if video is not None:
        def video_health() -> str | None:
            err = getattr(getattr(video, "_thread", None), "error", None)
            return None if err is None else f"video recorder stopped: {type(err).__name__}: {err}"

        parts.check("video", video_health)

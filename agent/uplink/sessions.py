"""What the device's officer sessions (live video, voice) share: their bookkeeping and their command handlers.

A session is started by the officer's signed ``<kind>.start``; its id is ``sha256(nonce)[:24]``. Only the
officer whose key started it may keep it alive or stop it; it ends when its time is up, when keepalives stop
arriving (the officer's page is gone), on ``<kind>.stop`` or at shutdown, and its signed end message goes
out last on the session topic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from agent.core.clock import Clock
from agent.uplink.command_controller import Handler, LiveSessionArgs
from agent.wire.commands import CommandRejected, CommandRequest
from agent.wire.live_frames import pack_message
from agent.wire.replies import DeviceSigner

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class DeviceSession:
    """One officer's session: who started it, with which nonce, where it goes, and until when."""

    session: str  # sha256(nonce)[:24]
    officer: str
    officer_key_id: str  # only this key may keep the session alive or stop it
    nonce: str  # the officer's, from the signed start command: every message is bound to it
    topic: str
    seconds: float
    deadline_mono: int  # the session ends here ("duration")
    last_keepalive_mono: int  # ... or keepalive_timeout_s after this ("keepalive")
    seq: int = 0  # messages (frames, packet groups) sent so far


S = TypeVar("S", bound=DeviceSession)


class _Timeouts(Protocol):
    @property
    def keepalive_timeout_s(self) -> float: ...


class SessionCommands(Generic[S]):
    """The session table of a manager: ``<kind>.start``/``stop``/``keepalive`` handlers, ownership, expiry.

    The manager provides ``cfg``, ``clock``, ``publish``, ``signer``, ``_lock`` (guarding ``_sessions``),
    ``start``, ``stop`` and ``_end(session, reason)`` (which also sends the end message: ``_publish_end``)."""

    kind: ClassVar[str]  # "live" or "voice": the command prefix and the words of errors and logs
    counted: ClassVar[str]  # what ``seq`` counts in the keepalive reply ("frames", "messages")
    cfg: _Timeouts
    clock: Clock
    publish: Any
    signer: DeviceSigner
    _lock: AbstractContextManager[Any]
    _sessions: dict[str, S]

    def handlers(self) -> dict[str, Handler]:
        return {f"{self.kind}.start": self.start, f"{self.kind}.stop": self.stop,
                f"{self.kind}.keepalive": self.keepalive}

    def start(self, request: CommandRequest, args: Any) -> Mapping[str, Any]:
        raise NotImplementedError

    def stop(self, request: CommandRequest, args: LiveSessionArgs) -> Mapping[str, Any]:
        raise NotImplementedError

    def _end(self, s: S, reason: str) -> Any:
        raise NotImplementedError

    def keepalive(self, request: CommandRequest, args: LiveSessionArgs) -> Mapping[str, Any]:
        s = self._owned(request, args.session)
        s.last_keepalive_mono = self.clock.mono_ns()
        return {"session": s.session, self.counted: s.seq}

    def _owned(self, request: CommandRequest, sid: str) -> S:
        """The running session ``sid``, if the officer's key that signed ``request`` started it."""
        with self._lock:
            s = self._sessions.get(sid)
        if s is None:
            raise CommandRejected("bad_args", f"no {self.kind} session {sid!r} is running")
        if s.officer_key_id != request.key_id:
            raise CommandRejected("unauthorized", f"{self.kind} session {sid} belongs to another officer")
        return s

    def active(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    def _expire(self) -> None:
        """End the sessions whose time is up ("duration") or whose keepalives stopped ("keepalive")."""
        now = self.clock.mono_ns()
        keepalive_ns = int(self.cfg.keepalive_timeout_s * 1e9)
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            if now >= s.deadline_mono:
                self._end(s, "duration")
            elif now - s.last_keepalive_mono > keepalive_ns:
                self._end(s, "keepalive")

    def _end_all(self, reason: str) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            self._end(s, reason)

    def _publish_end(self, s: S, tail: dict[str, Any]) -> None:
        """The session's signed end message, last on its topic (QoS 1); a failure is logged, the page times out."""
        try:
            self.publish(s.topic, pack_message(tail, self.signer), 1)
        except Exception:  # the officer's page also times out on its own
            log.exception("%s end message publish failed on %s", self.kind, s.topic)

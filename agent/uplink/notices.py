"""Advance notice of a scheduled inspection on the device: the signed ``inspection.notice`` command.

The command is verified like every other (signature, trust store, permissions.json, device, freshness,
nonce); its handler then checks what only the device can: the notice names this device's site, and its
schedule is in the future and at most ``NOTICE_MAX_AHEAD_DAYS`` ahead of the device clock. An accepted
notice is sealed as an ``event`` record (``extra.type`` = ``inspection_notice``, with the officer's signed
command) and listed under ``upcoming_inspections`` in the retained status until its case starts or its
planned end has passed. The list is kept in a small JSON file beside the replay cache (the chain holds the
sealed notices themselves); a damaged file is logged and the list starts empty.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from agent.core.clock import Clock
from agent.core.clock import iso_seconds as iso
from agent.core.clock import parse_aware_iso as parse_schedule
from agent.core.fsutil import atomic_write
from agent.core.model import Moment, SealedItem
from agent.core.vocab import INSPECTION_NOTICE, NOTICE_MAX_AHEAD_DAYS
from agent.uplink.command_controller import Handler, NoticeArgs
from agent.wire.commands import CommandRejected, CommandRequest

log = logging.getLogger(__name__)

MAX_UPCOMING: Final = 32  # notices a device keeps listed at once
NOTICES_FILE: Final = "notices.json"


class NoticeBoard:
    """The device's upcoming inspections (case -> notice), persisted in ``notices.json``; thread-safe."""

    def __init__(self, path: Path, clock: Clock, on_change: Callable[[], None] | None = None) -> None:
        self.path, self.clock, self.on_change = path, clock, on_change
        self._lock = threading.Lock()
        self._notices: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            raw = json.loads(self.path.read_text())
            if not isinstance(raw, list) or not all(isinstance(n, dict) and isinstance(n.get("case"), str)
                                                    and isinstance(n.get("scheduled"), str) for n in raw):
                raise ValueError("expected a list of notices")
            return {n["case"]: n for n in raw[:MAX_UPCOMING]}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s): listing no upcoming inspection until the next notice", self.path, exc)
            return {}

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.wall_ns() / 1e9, dt.UTC)

    def _prune(self) -> bool:
        """Drop notices whose planned end has passed; True when any was dropped."""
        now = self.now()
        gone = [c for c, n in self._notices.items()
                if parse_schedule(n["scheduled"]) + dt.timedelta(minutes=int(n.get("planned_minutes") or 0)) < now]
        for case in gone:
            del self._notices[case]
        return bool(gone)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(list(self._notices.values()), sort_keys=True).encode())

    def add(self, notice: dict[str, Any]) -> int:
        """Record (or reschedule) a notice; CommandRejected ``busy`` when the list is full. Returns its size."""
        with self._lock:
            self._prune()
            if notice["case"] not in self._notices and len(self._notices) >= MAX_UPCOMING:
                raise CommandRejected("busy", f"this device already lists {MAX_UPCOMING} upcoming inspections")
            self._notices[notice["case"]] = notice
            self._save()
            size = len(self._notices)
        self._changed()
        return size

    def started(self, case: str) -> None:
        """The case has started on the device: no longer upcoming."""
        with self._lock:
            if self._notices.pop(case, None) is None:
                return
            self._save()
        self._changed()

    def upcoming(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._prune():
                self._save()
            return sorted((dict(n) for n in self._notices.values()), key=lambda n: n["scheduled"])

    def status(self) -> dict[str, Any]:
        """The part of the device's retained status that lists upcoming inspections."""
        return {"upcoming_inspections": self.upcoming()}

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def notice_handler(seal: Callable[..., SealedItem], moment: Callable[[], Moment], board: NoticeBoard,
                   site: str) -> Handler:
    """``inspection.notice``: check site and schedule, seal the notice with the officer's command, list it."""

    def handle(request: CommandRequest, args: NoticeArgs) -> Mapping[str, Any]:
        if args.site != site:
            raise CommandRejected("wrong_device", f"notice is for site {args.site!r}, this device is at {site!r}")
        try:
            when = parse_schedule(args.scheduled)
        except ValueError as exc:
            raise CommandRejected("bad_args", f"scheduled: not an ISO 8601 time: {str(exc)[:120]}") from None
        now = board.now()
        if when <= now:
            raise CommandRejected("bad_args", f"scheduled: {iso(when)} is in the past (device clock {iso(now)})")
        if when > now + dt.timedelta(days=NOTICE_MAX_AHEAD_DAYS):
            raise CommandRejected("bad_args", f"scheduled: {iso(when)} is more than {NOTICE_MAX_AHEAD_DAYS} days "
                                              "ahead")
        fields = {**args.model_dump(exclude_none=True), "scheduled": iso(when)}
        item = seal("event", moment(), extra={"type": INSPECTION_NOTICE, **fields, "officer": request.officer,
                                               "officer_key_id": request.key_id, "command": dict(request.wire)})
        upcoming = board.add({**{k: fields[k] for k in ("case", "enterprise", "scheduled", "planned_minutes")},
                              "officer": request.officer, "seq": item.seq})
        log.info("inspection notice: case %s scheduled %s by %s (seq %d)", args.case, iso(when), request.officer,
                 item.seq)
        return {"case": args.case, "scheduled": iso(when), "seq": item.seq, "record_hash": item.record_hash,
                "upcoming": upcoming}

    return handle

"""The runtime's one sealing path, with the storage-quota policy in front of media.

Every record the running agent seals -- stills, segments, analytics events, device events, command
results -- goes through :meth:`QuotaSealer.seal`. A record without media goes straight to the sealer
(records always have room: the disk reserve is kept for them). Media first passes the quota: when the
vault or the filesystem is full, the oldest media that may leave the device (delivered to the broker
AND covered by an anchor) is evicted, and the eviction is sealed before anything is deleted. If
nothing may go, media stops (a sealed ``vault_full`` event, an alert via the uplink) and a closed
segment waits in staging to be sealed, in order, once there is room again.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from agent.core.errors import AgentError, VaultError
from agent.core.model import Moment, SealedItem
from agent.device.sealer import Sealer
from agent.evidence.vault import IndexRow, Vault, VaultFullError

log = logging.getLogger(__name__)
DISK_RESERVE_MAX = 16 * 1024 * 1024
RECOVERY_PROBE = 256 * 1024


def no_space(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) is the filesystem running out of space."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class DiskUsage(Protocol):
    """What a disk probe reports for the filesystem holding a path (``shutil.disk_usage``'s answer)."""

    @property
    def total(self) -> int: ...

    @property
    def free(self) -> int: ...


DiskProbe = Callable[[Path], DiskUsage]


def _size(media: Path | bytes) -> int:
    return len(media) if isinstance(media, bytes) else Path(media).stat().st_size


class QuotaSealer:
    """``seal()`` for everything the runtime produces; media passes the quota and disk-reserve rule."""

    def __init__(self, sealer: Sealer, vault: Vault, *, moment: Callable[[], Moment],
                 evictable: Callable[[IndexRow], bool], disk: DiskProbe = shutil.disk_usage) -> None:
        self.sealer = sealer
        self.disk = disk  # the filesystem's size and free space (tests inject a full disk)
        self.vault = vault
        self.moment = moment
        self.evictable = evictable  # the runtime's rule: delivered and anchored
        total = disk(vault.path).total
        self.disk_reserve_bytes = max(64 * 1024, min(DISK_RESERVE_MAX, total // 20))  # room kept for records
        self.full = False
        self._deferred: list[tuple[str, Moment, dict[str, Any]]] = []
        self._lock = threading.Lock()

    # -- the one sealing path ------------------------------------------------------------------
    def seal(self, kind: str, moment: Moment, *, media: Path | bytes | None = None,
             media_type: str | None = None, ext: str | None = None, end: Moment | None = None,
             extra: Mapping[str, Any] | None = None) -> SealedItem:
        """Seal one item. Media that does not fit raises VaultFullError (a closed file is kept for later)."""
        kw: dict[str, Any] = {"media": media, "media_type": media_type, "ext": ext, "end": end, "extra": extra}
        if media is None:
            return self.sealer.seal(kind, moment, **kw)
        try:
            item = self._seal_media(kind, moment, media, kw)
        except VaultFullError as exc:
            if isinstance(media, Path):  # a closed segment stays in staging and is sealed later
                with self._lock:
                    self._deferred.append((kind, moment, kw))
            self.on_full(exc)
            raise
        return item

    def _seal_media(self, kind: str, moment: Moment, media: Path | bytes, kw: dict[str, Any]) -> SealedItem:
        size = _size(media)
        try:
            self.check_disk(size)
            return self.sealer.seal(kind, moment, **kw)
        except VaultFullError:
            if not self.make_room(size):
                raise
            self.check_disk(size)
            return self.sealer.seal(kind, moment, **kw)
        except VaultError as exc:
            if no_space(exc):
                raise VaultFullError(f"vault filesystem full: {exc}") from exc
            raise

    # -- the rule ------------------------------------------------------------------------------
    def check_disk(self, nbytes: int) -> None:
        free = self.disk(self.vault.path).free
        if free - nbytes < self.disk_reserve_bytes:
            raise VaultFullError(f"vault filesystem has {free} bytes free; {nbytes} bytes of media would leave less "
                                 f"than the {self.disk_reserve_bytes}-byte reserve kept for records")

    def make_room(self, nbytes: int) -> bool:
        """Evict the oldest evictable media until ``nbytes`` fit; the eviction is sealed before any delete."""
        quota = self.vault.quota_bytes
        free = self.disk(self.vault.path).free  # the filesystem may fill before the quota does
        need = max(0 if quota is None else self.vault.usage_bytes() + nbytes - quota,
                   self.disk_reserve_bytes + nbytes - free)
        if need <= 0:
            return True
        chosen: list[IndexRow] = []
        for row in self.vault.rows():
            if need <= 0:
                break
            if row.media_path is not None and row.media_size > 0 and self.evictable(row):
                chosen.append(row)
                need -= row.media_size
        if need > 0:
            return False
        self.sealer.seal("event", self.moment(), extra={
            "type": "media_evicted", "phase": "onset", "rule": "delivered and anchored",
            "items": [{"seq": r.seq, "name": Path(r.media_path or "").name, "size": r.media_size} for r in chosen]})
        self.vault.evict_media(chosen)
        log.info("quota: evicted %d delivered and anchored media file(s)", len(chosen))
        return True

    # -- full and back -------------------------------------------------------------------------
    def on_full(self, exc: VaultFullError) -> None:
        """Media stops (sealed event, an alert via the uplink); the still schedule retries each interval."""
        if self.full:
            return
        log.error("%s", exc)
        try:
            self.sealer.seal("event", self.moment(),
                             extra={"type": "vault_full", "phase": "onset", "details": str(exc)})
        except AgentError as err:  # retried with the next still
            log.error("could not seal the vault_full event: %s", err)
            return
        self.full = True

    def try_recover(self) -> bool:
        """While full: is there room again (space freed, or evictable media)? Seal deferred media first."""
        with self._lock:
            deferred = list(self._deferred)
        probe = max([_size(kw["media"]) for _, _, kw in deferred] + [RECOVERY_PROBE])
        try:
            self.check_disk(probe)
            self.vault.check_room(probe)
        except VaultFullError:
            if not self.make_room(probe):
                return False
        for entry in deferred:
            kind, moment, kw = entry
            try:
                self._seal_media(kind, moment, kw["media"], kw)
            except VaultFullError:
                return False
            with self._lock:
                self._deferred.remove(entry)
        self.recovered()
        return True

    def recovered(self) -> None:
        if not self.full:
            return
        self.full = False
        log.warning("vault has room again: media capture resumed")
        try:
            self.sealer.seal("event", self.moment(), extra={"type": "vault_full", "phase": "end"})
        except AgentError as err:
            log.error("could not seal the vault_full end event: %s", err)

"""Group durability: many messages' files made durable in one round of fsyncs, before anything is acknowledged.

Per message the old ingest paid ~2.9 fsyncs (file, folder, chunk). In a batch, files are written and
renamed into place at once (so later messages of the batch can read them) and :meth:`SyncBatch.flush`
then makes every touched file and folder durable at once. Measured here (ext4, virtio disk) an fsync
costs ~3.3 ms whatever its size, so per-file fsyncs cap an ingest near 100 records/s; Linux
``syncfs(2)`` flushes the whole filesystem in one journal commit (~25 ms for 100 files), so batches of
``SYNCFS_FROM`` files or more use it (on a filesystem shared with busy writers it also waits for their
dirty data: give OUT its own volume). The caller commits its index and acknowledges only after
``flush`` returned. A crash before that leaves files the index
does not know; the broker redelivers their messages and the same bytes are written again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

SYNCFS_FROM = 8  # files in a batch from which one syncfs beats fsyncing each


def _load_syncfs() -> ctypes._NamedFuncPointer | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.syncfs if hasattr(libc, "syncfs") else None
    except OSError:
        return None


_SYNCFS = _load_syncfs()


def syncfs(folder: str) -> bool:
    """Flush the filesystem holding ``folder`` (Linux); False where syncfs is unavailable."""
    if _SYNCFS is None:
        return False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs({folder}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)
    return True


class SyncBatch:
    """Files and folders to fsync at the end of a batch (each once)."""

    def __init__(self) -> None:
        self._files: dict[str, None] = {}
        self._dirs: dict[str, None] = {}
        self.fsyncs = 0

    def write(self, path: Path, data: bytes, *, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` atomically (temp file + rename); durable after flush()."""
        self.place(self.stage(path, data, "w", mode=mode), path)

    @staticmethod
    def stage(path: Path, data: bytes, tag: str, *, mode: int = 0o644) -> Path:
        """Write ``data`` next to ``path`` under a hidden name, not yet in place (work done before a lock);
        :meth:`place` puts it there, or the caller unlinks it. ``tag`` tells apart two candidates for one
        path in a batch (a record and its fork): it must be a plain word, such as a hash prefix."""
        # One writer per process and name at a time (the ingest lock): a fixed temp name is enough and much
        # cheaper than mkstemp's random names; O_EXCL-free so a crashed run's leftover is reused.
        staged = path.parent / f".{path.name}.{tag}.{os.getpid()}.in"
        try:
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
            raise
        return staged

    def place(self, staged: Path, path: Path) -> None:
        """Rename a staged file into ``path``; durable after flush()."""
        try:
            os.replace(staged, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
            raise
        self.written(path)

    def written(self, path: Path) -> None:
        """A file changed in place (pwrite of a chunk): its data and its folder."""
        self._files[str(path)] = None
        self._dirs[str(path.parent)] = None

    def moved(self, path: Path) -> None:
        """A file renamed into ``path``: its data was synced when written; the folder entry needs a sync."""
        self._files[str(path)] = None
        self._dirs[str(path.parent)] = None

    def flush(self) -> None:
        """Make every touched file and folder durable; raises OSError (nothing may be acked then)."""
        if len(self._files) >= SYNCFS_FROM and self._dirs and syncfs(next(iter(self._dirs))) \
                and self._one_filesystem():
            self.fsyncs += 1
            self.discard()
            return
        for name in self._files:
            try:
                fd = os.open(name, os.O_RDONLY)
            except FileNotFoundError:  # moved on within the batch: its new place is listed too
                continue
            try:
                os.fsync(fd)
                self.fsyncs += 1
            finally:
                os.close(fd)
        for name in self._dirs:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
                self.fsyncs += 1
            finally:
                os.close(fd)
        self._files.clear()
        self._dirs.clear()

    def _one_filesystem(self) -> bool:
        """syncfs covered one filesystem: fsync folders on any other (a partial dir on another mount)."""
        devs = set()
        for name in self._dirs:
            with contextlib.suppress(FileNotFoundError):
                devs.add(os.stat(name).st_dev)
        if len(devs) <= 1:
            return True
        first = os.stat(next(iter(self._dirs))).st_dev
        self._files = {n: None for n in self._files if _dev(n) != first}
        self._dirs = {n: None for n in self._dirs if _dev(n) != first}
        return False

    def discard(self) -> None:
        self._files.clear()
        self._dirs.clear()


def _dev(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except FileNotFoundError:
        return None


class StoreLock:
    """The store lock of a ``--share`` group on one OUT: an ``flock`` on ``OUT/.ingest/store.lock``.

    SQLite's own ``BEGIN IMMEDIATE`` would serialise the workers too, but its busy handler *sleeps and
    polls* (up to 100 ms a try): with three workers the profile showed 35–67 % of each store thread
    asleep in it while the lock was free. ``flock`` queues the waiters in the kernel and wakes one the
    moment the holder is done. Held for the decisions, writes, fsyncs and commit of one batch only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._fd is None:
            raise OSError(f"{self.path}: store lock already closed")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

"""Listing and opening evidence files: ``os.scandir``, no ``stat`` per file, never through a symbolic link.

The kind of each entry comes from the directory listing itself (``d_type``), so a folder of N files costs
one ``getdents`` pass and no per-file system call; the file is only opened (and ``fstat``-ed once, to check
it is still a regular file) when it is read. Folders named in ``skip`` (the vault's staging, orphans, log,
keys, private) are not entered at any depth.
"""

from __future__ import annotations

import errno
import hashlib
import operator
import os
import stat
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO

from agent.core.errors import VerificationError

__all__ = ["SYMLINK_REFUSED", "digest_regular", "open_if_regular", "open_regular", "read_regular", "walk"]

SYMLINK_REFUSED = "symbolic link refused (it may point outside the evidence)"


def walk(root: str, skip: Collection[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(files, refused) under ``root``: files as (``/``-separated relative name, path), sorted by path parts;
    refused as (relative name, why) for every symbolic link met (file or folder).

    Each folder's listing is sorted by name and entered depth first, which yields that order without a
    sort of every path by its parts; a folder's listing is read whole and closed before going deeper."""
    files: list[tuple[str, str]] = []
    refused: list[tuple[str, str]] = []
    pending = [_listing("", root)]
    while pending:
        nxt = next(pending[-1], None)
        if nxt is None:
            pending.pop()
            continue
        name, entry = nxt
        if entry.is_symlink():
            refused.append((name, SYMLINK_REFUSED))
        elif entry.is_dir(follow_symlinks=False):
            if entry.name not in skip:
                pending.append(_listing(name, entry.path))
        elif entry.is_file(follow_symlinks=False):
            files.append((name, entry.path))
    refused.sort()
    return files, refused


def _listing(rel: str, folder: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=_name)
    return ((f"{rel}/{e.name}" if rel else e.name, e) for e in entries)


_name = operator.attrgetter("name")


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0)


def read_regular(path: str | Path, limit: int) -> tuple[int, bytes | None]:
    """(size, bytes) of a regular file opened without following a symlink; bytes None when over ``limit``."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise VerificationError(f"{os.path.basename(path)}: not a regular file (refused)")
        if st.st_size > limit:
            return st.st_size, None
        want = st.st_size + 1  # one byte more than stat says: a short read is the end of the file
        data = os.read(fd, want)
        if len(data) < want:
            return st.st_size, data
        chunks = [data]  # the file grew since fstat: read on, still bounded by ``limit``
        left = limit + 1 - len(data)
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
        return st.st_size, b"".join(chunks)[:limit]
    finally:
        os.close(fd)


_READ = 1 << 20  # one read's buffer: what hashing holds in memory at once


def digest_regular(path: str) -> tuple[int, str] | None:
    """(size, SHA-256 hex) of a regular file opened without following a symlink, read straight from its file
    descriptor (at most 1 MiB held at once); None when it is absent or not a regular file.
    Raises VerificationError for a symbolic link, OSError when it cannot be opened or read."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VerificationError(f"{os.path.basename(path)} is a symbolic link (refused)") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        want = min(st.st_size + 1, _READ)
        data = os.read(fd, want)  # a small file: one read (a short read is the end of the file), one update
        h = hashlib.sha256(data)
        size = len(data)
        if size == want:  # larger than 1 MiB, or grown since fstat: read on
            while data := os.read(fd, _READ):
                h.update(data)
                size += len(data)
        return size, h.hexdigest()
    finally:
        os.close(fd)


def open_regular(path: str | Path) -> IO[bytes]:
    """A regular file opened without following a symlink (one ``fstat``)."""
    fh = _open_regular(path, missing_ok=False)
    assert fh is not None
    return fh


def open_if_regular(path: str | Path) -> IO[bytes] | None:
    """Like ``open_regular``, but None when there is no such file or something else than a regular file."""
    return _open_regular(path, missing_ok=True)


def _open_regular(path: str | Path, *, missing_ok: bool) -> IO[bytes] | None:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VerificationError(f"{os.path.basename(path)} is a symbolic link (refused)") from None
        if missing_ok and exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        if missing_ok:
            return None
        raise VerificationError(f"{os.path.basename(path)}: not a regular file (refused)")
    return os.fdopen(fd, "rb")

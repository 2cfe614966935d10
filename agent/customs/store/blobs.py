"""Evidence files in a content-addressed, write-once store: one backend per file behind :class:`BlobStore`.

What a backend must do:

* name a blob by the SHA-256 of its bytes only (``blob_key``), never by anything a device sent;
* check the bytes against that SHA-256 before the blob becomes visible;
* never replace or delete a stored blob (a put of bytes already stored is a no-op that returns the key);
* be durable when ``put_file`` returns (the index commits, and the message is acknowledged, after it) —
  or, given the caller's ``SyncBatch``, when that batch is flushed (the ingest flushes before it commits);
* raise :class:`BlobError` (an ``OSError``: the ingest keeps the message unacknowledged and retries) when
  the store cannot take the blob now.

``FileBlobs`` keeps them on a filesystem path (a shared mount in a cluster); ``s3.py`` in an
S3-compatible bucket, with object lock for buckets that must keep evidence for a retention period.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from agent.customs.store.durable import SyncBatch

HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BlobError(OSError):
    """A blob could not be stored or read; the message names the blob and the reason."""


def blob_key(sha256: str) -> str:
    """``ab/cd/abcd…``: fan-out folders keep any one folder small."""
    if not HEX64.match(sha256):
        raise BlobError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class BlobStore(abc.ABC):
    @abc.abstractmethod
    def put_file(self, sha256: str, path: Path, batch: SyncBatch | None = None) -> str:
        """Store the file's bytes under their SHA-256 (checked); returns the key. Idempotent, write-once.

        With ``batch`` the blob may become durable only when the batch is flushed (one round of fsyncs
        for many blobs); without it, before this returns."""

    def describe(self) -> str:
        """Where the blobs go, for logs and the ingest report."""
        return type(self).__name__

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abc.abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """The blob's bytes (a file object the caller closes)."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class FileBlobs(BlobStore):
    """Blobs as read-only files under ``root``; a hard link makes each one appear exactly once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def describe(self) -> str:
        return str(self.root)

    def put_file(self, sha256: str, path: Path, batch: SyncBatch | None = None) -> str:
        key = blob_key(sha256)
        final = self.root / key
        if final.exists():
            if sha256_of(path) != sha256:
                raise BlobError(f"{path} does not hash to {sha256[:16]}… (not stored)")
            return key
        final.parent.mkdir(parents=True, exist_ok=True)
        if batch is not None and self._link_into(sha256, path, final, batch):
            return key
        fd, tmp = tempfile.mkstemp(prefix=".in-", dir=final.parent)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                while block := src.read(1 << 20):
                    h.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != sha256:
                raise BlobError(f"{path} does not hash to {sha256[:16]}… (not stored)")
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, final)  # fails if another worker stored it first: write-once, never replaced
            except FileExistsError:
                return key
            dfd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return key

    @staticmethod
    def _link_into(sha256: str, path: Path, final: Path, batch: SyncBatch) -> bool:
        """Same filesystem: the checked file itself becomes the blob (a hard link, no copy); its data and
        the new folder entry are made durable by the batch. False: another filesystem, copy instead."""
        if sha256_of(path) != sha256:
            raise BlobError(f"{path} does not hash to {sha256[:16]}… (not stored)")
        try:
            os.link(path, final)
        except FileExistsError:
            return True  # another worker stored it first: write-once holds
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                return False
            raise BlobError(f"{final}: {exc.strerror or exc}") from exc
        os.chmod(final, 0o444)
        batch.written(final)
        return True

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self.path_of(sha256), "rb")
        except FileNotFoundError as exc:
            raise BlobError(f"blob {sha256[:16]}… is not in {self.root}") from exc

    def check(self, sha256: str) -> bool:
        """Re-hash a stored blob (audits): True when its bytes still match its name."""
        return sha256_of(self.path_of(sha256)) == sha256

"""Where evidence is read from: a vault, a bare copy of its files, one item, or an export zip.

The verifier sees all four through one small interface, so the checks are the same everywhere. Every
source reads in bounded memory: sizes are checked before reading, records are read one at a time,
media and report files are streamed, and nothing is read through a symbolic link.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from agent.core.errors import VerificationError
from agent.signing.layout import ITEM_RE, SIDECAR_EXT
from agent.signing.walk import digest_regular, open_if_regular, open_regular, read_regular, walk

__all__ = ["MAX_HELD_BYTES", "MAX_MEDIA_BYTES", "MAX_META_BYTES", "MAX_SIDECAR_BYTES", "MAX_TOTAL_BYTES", "SKIP_DIRS",
           "ZIP_ERRORS", "DirSource", "Entry", "EvidenceSource", "SingleSource", "ZipSource", "open_if_regular",
           "open_regular", "open_source", "plain_name", "read_regular"]

Mode = Literal["vault", "files", "single", "bundle"]
SKIP_DIRS = {"staging", "orphans", "log", "keys", "private"}
# Hostile input is refused by its declared size, before anything is read; nothing is read through a
# symbolic link; what is held in memory at once is bounded:
MAX_SIDECAR_BYTES = 1 << 20  # one signed record (the ingest's limit too)
MAX_META_BYTES = 16 << 20  # one other metadata file read whole (anchoring proofs, checkpoints, the report manifest)
MAX_HELD_BYTES = 96 << 20  # metadata read whole, plus record bytes beyond SMALL_SIDECAR each, over one check
SMALL_SIDECAR = 64 << 10
MAX_MEDIA_BYTES = 16 << 30  # media is streamed (hashed in 1 MiB reads), never held
MAX_TOTAL_BYTES = 256 << 30  # what a bundle may declare in all
MAX_RATIO = 200
_CHUNK = 1 << 16


def plain_name(name: str) -> bool:
    """A media name from a record may only be a bare evidence item name: never a path."""
    return "/" not in name and "\\" not in name and bool(ITEM_RE.match(name))


@dataclass(frozen=True)
class Entry:
    """One sidecar as found: its display name, bytes and the folder its media should sit in."""

    name: str
    folder: str
    sidecar: bytes


class EvidenceSource:
    """Base: subclasses list files by relative name, read them bounded and stream media.

    ``refused`` collects (name, why) of files refused before reading (symlinks, path-like names, bombs,
    duplicate names, sizes over the limits); the verifier reports each as a problem.
    """

    mode: Mode = "files"
    device_cert: bytes | None = None
    manifest: dict[str, Any] | None = None
    refused: list[tuple[str, str]]
    _held: int = 0

    def iter_entries(self, prefix: str = "") -> Iterator[Entry]:
        """Each sidecar (under ``prefix``) once, read when it is reached (never all of them at once)."""
        raise NotImplementedError

    def entries(self) -> list[Entry]:
        return list(self.iter_entries())

    def media_files(self) -> list[tuple[str, str]]:
        """(folder, name) of every media-looking file, to flag files that no record covers."""
        raise NotImplementedError

    def names(self, prefix: str) -> list[str]:
        """Relative names (``/``-separated) of the accepted regular files under ``prefix``."""
        raise NotImplementedError

    def read(self, name: str, limit: int = MAX_META_BYTES) -> bytes | None:
        """A whole file of at most ``limit`` bytes (None when absent); counted against MAX_HELD_BYTES."""
        raise NotImplementedError

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes] | None]:
        """A file to stream (None when absent)."""
        raise NotImplementedError
        yield None

    @contextmanager
    def open_media(self, folder: str, name: str) -> Iterator[IO[bytes] | None]:
        raise NotImplementedError
        yield None

    def media_digest(self, folder: str, name: str) -> tuple[int, str] | None:
        """(size, SHA-256 hex) of a media file, streamed; None when it is absent. Read errors raise ZIP_ERRORS."""
        with self.open_media(folder, name) as fh:
            if fh is None:
                return None
            h = hashlib.sha256()
            size = 0
            buf = bytearray(_CHUNK)  # small enough for a plain malloc; read(1 MiB) allocated 1 MiB per call
            view = memoryview(buf)
            while n := fh.readinto(buf):  # type: ignore[attr-defined]
                h.update(view[:n])
                size += n
            return size, h.hexdigest()

    def members(self, prefix: str) -> dict[str, bytes]:
        """Every accepted file under ``prefix``, read whole within the limits (anchoring material)."""
        out = {}
        for n in self.names(prefix):
            data = self.read(n)
            if data is not None:
                out[n] = data
        return out

    def _hold(self, name: str, size: int, limit: int, free: int = 0) -> bool:
        """Account for ``size`` bytes about to be read whole; refuse (by name) past the limits."""
        if size > limit:
            self.refused.append((name[:200], f"{size} bytes: over the {limit}-byte limit for this file "
                                             "(refused before reading)"))
            return False
        if self._held + max(0, size - free) > MAX_HELD_BYTES:
            self.refused.append((name[:200], f"refused before reading: the evidence's metadata exceeds "
                                             f"{MAX_HELD_BYTES} bytes in all (memory bound)"))
            return False
        self._held += max(0, size - free)
        return True

    def close(self) -> None:
        pass


class DirSource(EvidenceSource):
    """A vault or a bare copy of its files, listed once (agent.signing.walk) without following links."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mode = "vault" if (root / "index.sqlite").exists() else "files"
        self._files, self.refused = walk(str(root), SKIP_DIRS)  # (relative name, path), sorted
        self._rel = dict(self._files)
        self.device_cert = self.read("device/cert.pem", MAX_SIDECAR_BYTES)

    def iter_entries(self, prefix: str = "") -> Iterator[Entry]:
        suffix = "." + SIDECAR_EXT
        for name, path in self._files:
            if not name.endswith(suffix) or not name.startswith(prefix):
                continue
            try:
                size, data = read_regular(path, MAX_SIDECAR_BYTES)
            except OSError as exc:
                self.refused.append((name, f"unreadable ({exc.strerror or exc}) or a symbolic link (refused)"))
                continue
            if data is None or not self._hold(name, size, MAX_SIDECAR_BYTES, SMALL_SIDECAR):
                if data is None:
                    self.refused.append((name, f"sidecar larger than {MAX_SIDECAR_BYTES} bytes"))
                continue
            yield Entry(name, os.path.dirname(path), data)

    def media_files(self) -> list[tuple[str, str]]:
        suffix = "." + SIDECAR_EXT
        out = []
        for _, path in self._files:
            folder, base = os.path.split(path)
            if ITEM_RE.match(base) and not base.endswith(suffix):
                out.append((folder, base))
        return out

    def names(self, prefix: str) -> list[str]:
        return [n for n in self._rel if n.startswith(prefix)]

    def read(self, name: str, limit: int = MAX_META_BYTES) -> bytes | None:
        path = self._rel.get(name)
        if path is None:
            return None
        try:
            size, data = read_regular(path, limit)
        except OSError as exc:
            raise VerificationError(f"{name}: unreadable ({exc.strerror or exc})") from None
        if data is None or not self._hold(name, size, limit):
            if data is None:
                self.refused.append((name, f"{size} bytes: over the {limit}-byte limit (refused before reading)"))
            return None
        return data

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes] | None]:
        path = self._rel.get(name)
        if path is None:
            yield None
            return
        with open_regular(path) as fh:
            yield fh

    @contextmanager
    def open_media(self, folder: str, name: str) -> Iterator[IO[bytes] | None]:
        """The media file (one open and one ``fstat``); None when it is absent or not a regular file."""
        if not plain_name(name):
            raise VerificationError(f"media name {name[:80]!r} is not a bare item name (path-like names refused)")
        try:
            fh = open_if_regular(os.path.join(folder, name))
        except VerificationError:
            raise VerificationError(f"media {name} is a symbolic link (refused)") from None
        if fh is None:
            yield None
            return
        with fh:
            yield fh

    def media_digest(self, folder: str, name: str) -> tuple[int, str] | None:
        """Hashed from the file descriptor (agent.signing.walk.digest_regular): no file object in between."""
        if not plain_name(name):
            raise VerificationError(f"media name {name[:80]!r} is not a bare item name (path-like names refused)")
        try:
            return digest_regular(os.path.join(folder, name))
        except VerificationError:
            raise VerificationError(f"media {name} is a symbolic link (refused)") from None


class SingleSource(DirSource):
    """One media file (or sidecar) checked on its own: no sequence or chain checks."""

    def __init__(self, path: Path) -> None:
        m = ITEM_RE.match(path.name)
        if not m:
            raise VerificationError(f"{path}: not an evidence item name (expected NNNNNNNNNNNN.kind.ext)")
        self.mode = "single"
        self.refused = []
        stem = f"{m.group(1)}.{m.group(2)}"
        self.root = path.parent
        self._files = [(p.name, str(p)) for p in sorted(path.parent.glob(stem + ".*"))
                       if not p.is_symlink() and p.is_file()]
        self._rel = dict(self._files)
        cert = None
        for parent in (path.parent, *path.parents):
            candidate = parent / "device" / "cert.pem"
            if candidate.is_file() and not candidate.is_symlink():
                cert = read_regular(candidate, MAX_SIDECAR_BYTES)[1]
                break
        self.device_cert = cert


# What zipfile raises for damaged archives: bad headers/CRC, inflate errors, truncation, "encrypted" flags,
# unknown compression methods.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError)


class ZipSource(EvidenceSource):
    def __init__(self, path: Path) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise VerificationError(f"{path}: not a readable export bundle ({exc})") from exc
        self.mode = "bundle"
        self._path = path
        self.refused = []
        self._infos = self._accepted(self._zip.infolist())
        self._names = list(self._infos)
        if "device/cert.pem" in self._infos:
            self.device_cert = self.read("device/cert.pem", MAX_SIDECAR_BYTES)
        if "MANIFEST.json" in self._infos:
            raw = self.read("MANIFEST.json")
            try:
                manifest = json.loads(raw or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                raise VerificationError(f"{path}: MANIFEST.json is not valid JSON ({exc})") from None
            if not isinstance(manifest, dict):
                raise VerificationError(f"{path}: MANIFEST.json is not a JSON object")
            self.manifest = manifest

    def _accepted(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        """Members by name; a name given twice, or two names equal but for case, are refused (every copy):
        unzip tools disagree about which copy they extract."""
        seen: dict[str, list[zipfile.ZipInfo]] = {}
        for info in infos:
            seen.setdefault(info.filename.casefold(), []).append(info)
        out: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for group in seen.values():
            if len(group) > 1:
                names = sorted({i.filename for i in group})
                why = (f"duplicate zip member name ({len(group)} copies): unzip tools disagree about which "
                       "one they extract" if len(names) == 1 else
                       f"member names collide on a case-insensitive file system: {', '.join(names)[:300]}")
                for name in names:
                    self.refused.append((name[:200], why))
                continue
            info = group[0]
            if not self._acceptable(info):
                continue
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                self.refused.append((info.filename[:200], f"the bundle declares more than {MAX_TOTAL_BYTES} "
                                                          "bytes in all (refused before reading)"))
                continue
            out[info.filename] = info
        return out

    def _acceptable(self, info: zipfile.ZipInfo) -> bool:
        """Refuse (by name, before reading) symlinks, path-like names and members that inflate absurdly."""
        name = info.filename
        if name.endswith("/"):
            return False
        why = None
        if name.startswith("/") or "\\" in name or ".." in name.split("/") or ":" in name or "\0" in name:
            why = "path-like member name refused"
        elif stat.S_ISLNK(info.external_attr >> 16):
            why = "symbolic link member refused"
        elif info.file_size > MAX_MEDIA_BYTES:
            why = f"member of {info.file_size} bytes is over the size limit"
        elif info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(1, info.compress_size):
            why = f"member inflates {info.file_size // max(1, info.compress_size)}x (zip bomb refused)"
        if why:
            self.refused.append((name[:200], why))
            return False
        return True

    def read(self, name: str, limit: int = MAX_META_BYTES) -> bytes | None:
        """A member's bytes, refused by its declared size before reading; a damaged zip is a finding."""
        info = self._infos.get(name)
        if info is None or not self._hold(name, info.file_size, limit):
            return None
        try:
            with self._zip.open(info) as fh:
                return fh.read(limit + 1)[:limit]
        except ZIP_ERRORS as exc:
            raise VerificationError(f"{self._path}: bundle member {name} unreadable ({exc})") from exc

    def iter_entries(self, prefix: str = "") -> Iterator[Entry]:
        for n in sorted(self._names):
            if not n.endswith("." + SIDECAR_EXT) or not n.startswith(prefix):
                continue
            info = self._infos[n]
            if not self._hold(n, info.file_size, MAX_SIDECAR_BYTES, SMALL_SIDECAR):
                continue
            try:
                with self._zip.open(info) as fh:
                    data = fh.read(MAX_SIDECAR_BYTES + 1)[:MAX_SIDECAR_BYTES]
            except ZIP_ERRORS as exc:
                raise VerificationError(f"{self._path}: bundle member {n} unreadable ({exc})") from exc
            yield Entry(n, n.rpartition("/")[0], data)

    def names(self, prefix: str) -> list[str]:
        return [n for n in self._names if n.startswith(prefix)]

    def media_files(self) -> list[tuple[str, str]]:
        out = []
        for n in self._names:
            folder, _, name = n.rpartition("/")
            if SKIP_DIRS.intersection(folder.split("/")):
                continue
            if ITEM_RE.match(name) and not name.endswith("." + SIDECAR_EXT):
                out.append((folder, name))
        return out

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes] | None]:
        info = self._infos.get(name)
        if info is None:
            yield None
            return
        try:
            fh = self._zip.open(info)
        except ZIP_ERRORS as exc:
            raise VerificationError(f"{self._path}: bundle member {name} unreadable ({exc})") from exc
        with fh:
            yield fh

    @contextmanager
    def open_media(self, folder: str, name: str) -> Iterator[IO[bytes] | None]:
        if not plain_name(name):
            raise VerificationError(f"media name {name[:80]!r} is not a bare item name (path-like names refused)")
        with self.open(f"{folder}/{name}" if folder else name) as fh:
            yield fh

    def close(self) -> None:
        self._zip.close()


def open_source(path: Path) -> EvidenceSource:
    if path.is_dir():
        return DirSource(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return ZipSource(path)
    if path.is_file():
        return SingleSource(path)
    raise VerificationError(f"{path}: no such file or directory")

"""Where evidence is read from: a vault, a bare copy of its files, one item, or an export zip.

The verifier sees all four through one small interface, so the checks are the same everywhere.
"""

from __future__ import annotations

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

Mode = Literal["vault", "files", "single", "bundle"]
SKIP_DIRS = {"staging", "orphans", "log", "keys", "private"}
# Hostile bundles: a member larger than this (metadata) or inflating more than MAX_RATIO times is refused
# before it is read; zipfile stops reading a member at its declared size, so memory stays bounded.
MAX_META_BYTES = 16 << 20
MAX_MEDIA_BYTES = 16 << 30
MAX_RATIO = 200


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
    """Base: subclasses fill in entries, media access and the device certificate."""

    mode: Mode = "files"
    device_cert: bytes | None = None
    manifest: dict[str, Any] | None = None
    refused: list[tuple[str, str]]  # (name, why) of files refused before reading (symlinks, path-like, bombs)

    def entries(self) -> list[Entry]:
        raise NotImplementedError

    def media_files(self) -> list[tuple[str, str]]:
        """(folder, name) of every media-looking file, to flag files that no record covers."""
        raise NotImplementedError

    @contextmanager
    def open_media(self, folder: str, name: str) -> Iterator[IO[bytes] | None]:
        raise NotImplementedError
        yield None

    def close(self) -> None:
        pass


def _walk(root: Path, refused: list[tuple[str, str]]) -> list[Path]:
    """Regular files under ``root``, never following a symbolic link (each one is refused by name)."""
    out: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        rel = base.relative_to(root).parts
        if SKIP_DIRS.intersection(rel):
            dirs[:] = []
            continue
        for name in [*dirs, *files]:
            path = base / name
            if path.is_symlink():
                refused.append((str(path.relative_to(root)), "symbolic link refused (it may point outside "
                                                            "the evidence)"))
            elif name in files and path.is_file():
                out.append(path)
    return sorted(out)


class DirSource(EvidenceSource):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.refused = []
        self.mode = "vault" if (root / "index.sqlite").exists() else "files"
        cert = root / "device" / "cert.pem"
        self.device_cert = cert.read_bytes() if cert.is_file() and not cert.is_symlink() else None
        self._files = _walk(root, self.refused)

    def entries(self) -> list[Entry]:
        out = []
        for p in self._files:
            if not p.name.endswith("." + SIDECAR_EXT):
                continue
            if p.stat().st_size > MAX_META_BYTES:
                self.refused.append((str(p.relative_to(self.root)), f"sidecar larger than {MAX_META_BYTES} bytes"))
                continue
            out.append(Entry(str(p.relative_to(self.root)), str(p.parent), p.read_bytes()))
        return out

    def media_files(self) -> list[tuple[str, str]]:
        return [(str(p.parent), p.name) for p in self._files
                if ITEM_RE.match(p.name) and not p.name.endswith("." + SIDECAR_EXT)]

    @contextmanager
    def open_media(self, folder: str, name: str) -> Iterator[IO[bytes] | None]:
        if not plain_name(name):
            raise VerificationError(f"media name {name[:80]!r} is not a bare item name (path-like names refused)")
        path = Path(folder) / name
        if path.is_symlink():
            raise VerificationError(f"media {name} is a symbolic link (refused)")
        if not path.is_file():
            yield None
            return
        with open(path, "rb") as fh:
            yield fh


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
        self._files = [p for p in sorted(path.parent.glob(stem + ".*")) if not p.is_symlink() and p.is_file()]
        cert = None
        for parent in (path.parent, *path.parents):
            if (parent / "device" / "cert.pem").exists():
                cert = (parent / "device" / "cert.pem").read_bytes()
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
        self._names = [i.filename for i in self._zip.infolist() if self._acceptable(i)]
        if "device/cert.pem" in self._names:
            self.device_cert = self._read("device/cert.pem")
        if "MANIFEST.json" in self._names:
            try:
                manifest = json.loads(self._read("MANIFEST.json"))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                raise VerificationError(f"{path}: MANIFEST.json is not valid JSON ({exc})") from None
            if not isinstance(manifest, dict):
                raise VerificationError(f"{path}: MANIFEST.json is not a JSON object")
            self.manifest = manifest

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
        elif info.file_size > (MAX_META_BYTES if not ITEM_RE.match(name.rpartition("/")[2])
                               or name.endswith("." + SIDECAR_EXT) else MAX_MEDIA_BYTES):
            why = f"member of {info.file_size} bytes is over the size limit"
        elif info.file_size > (1 << 20) and info.file_size > MAX_RATIO * max(1, info.compress_size):
            why = f"member inflates {info.file_size // max(1, info.compress_size)}x (zip bomb refused)"
        if why:
            self.refused.append((name[:200], why))
            return False
        return True

    def _read(self, name: str) -> bytes:
        """A member's bytes; a damaged zip is a verification finding, never a crash."""
        try:
            with self._zip.open(name) as fh:
                return fh.read(MAX_META_BYTES + 1)[:MAX_META_BYTES]
        except ZIP_ERRORS as exc:
            raise VerificationError(f"{self._path}: bundle member {name} unreadable ({exc})") from exc

    def entries(self) -> list[Entry]:
        return [Entry(n, n.rpartition("/")[0], self._read(n))
                for n in sorted(self._names) if n.endswith("." + SIDECAR_EXT)]

    def members(self, prefix: str) -> dict[str, bytes]:
        """Bundle members under ``prefix`` (anchoring proofs, checkpoints, receipts)."""
        return {n: self._read(n) for n in self._names if n.startswith(prefix)}

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
    def open_media(self, folder: str, name: str) -> Iterator[IO[bytes] | None]:
        if not plain_name(name):
            raise VerificationError(f"media name {name[:80]!r} is not a bare item name (path-like names refused)")
        member = f"{folder}/{name}" if folder else name
        if member not in self._names:
            yield None
            return
        try:
            fh = self._zip.open(member)
        except ZIP_ERRORS as exc:
            raise VerificationError(f"{self._path}: bundle member {member} unreadable ({exc})") from exc
        with fh:
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

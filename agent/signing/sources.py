"""Where evidence is read from: a vault, a bare copy of its files, one item, or an export zip.

The verifier sees all four through one small interface, so the checks are the same everywhere.
"""

from __future__ import annotations

import json
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


class DirSource(EvidenceSource):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.mode = "vault" if (root / "index.sqlite").exists() else "files"
        cert = root / "device" / "cert.pem"
        self.device_cert = cert.read_bytes() if cert.exists() else None
        self._files = [p for p in sorted(root.rglob("*"))
                       if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(root).parts[:-1])]

    def entries(self) -> list[Entry]:
        return [Entry(str(p.relative_to(self.root)), str(p.parent), p.read_bytes())
                for p in self._files if p.name.endswith("." + SIDECAR_EXT)]

    def media_files(self) -> list[tuple[str, str]]:
        return [(str(p.parent), p.name) for p in self._files
                if ITEM_RE.match(p.name) and not p.name.endswith("." + SIDECAR_EXT)]

    @contextmanager
    def open_media(self, folder: str, name: str) -> Iterator[IO[bytes] | None]:
        path = Path(folder) / name
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
        stem = f"{m.group(1)}.{m.group(2)}"
        self.root = path.parent
        self._files = [p for p in sorted(path.parent.glob(stem + ".*"))]
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
        names = self._zip.namelist()
        self._names = [n for n in names if not n.endswith("/")]
        if "device/cert.pem" in names:
            self.device_cert = self._read("device/cert.pem")
        if "MANIFEST.json" in names:
            try:
                self.manifest = json.loads(self._read("MANIFEST.json"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise VerificationError(f"{path}: MANIFEST.json is not valid JSON ({exc})") from exc

    def _read(self, name: str) -> bytes:
        """A member's bytes; a damaged zip is a verification finding, never a crash."""
        try:
            return self._zip.read(name)
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

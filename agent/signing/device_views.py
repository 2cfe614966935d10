"""A report bundle of several devices of one site: each device's chain under ``devices/<id>/``.

A several-camera inspection's bundle holds, for every device of the case, an export of that device's run
(``devices/<id>/device/cert.pem``, ``devices/<id>/items/...``, ``devices/<id>/MANIFEST.json``) beside one
``report/`` and the bundle's ``MANIFEST.json``/``README.txt``. ``DeviceView`` shows one device's folder to
the verifier as if it were a one-device bundle, so every check of a chain runs unchanged on each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from agent.core.vocab import ID_RE
from agent.signing.sources import MAX_META_BYTES, MAX_SIDECAR_BYTES, Entry, EvidenceSource

__all__ = ["DEVICES_DIR", "TOP_LEVEL", "DeviceView", "device_folders", "stray_members"]

DEVICES_DIR = "devices"
TOP_LEVEL = ("MANIFEST.json", "README.txt")
MAX_DEVICE_FOLDERS = 8


def device_folders(src: EvidenceSource) -> tuple[list[str], list[str]]:
    """The device ids under ``devices/`` (sorted) and the folder names there that are not device ids."""
    ids: set[str] = set()
    bad: set[str] = set()
    for name in src.names(DEVICES_DIR + "/"):
        folder = name.split("/")[1] if name.count("/") >= 2 else ""
        (ids if ID_RE.match(folder) else bad).add(folder)
    return sorted(ids), sorted(bad)


def stray_members(src: EvidenceSource, report_dir: str) -> list[str]:
    """Members of a several-device bundle outside ``devices/<id>/``, ``report/`` and the two top-level files."""
    return [n for n in src.names("") if not (n.startswith(DEVICES_DIR + "/") or n.startswith(report_dir + "/")
                                             or n in TOP_LEVEL)]


class DeviceView(EvidenceSource):
    """One device's folder of a several-device bundle, read through the bundle's own bounded source.

    Names given to ``names``/``read``/``open`` are relative to the folder; entries and media keep the
    bundle's full member names (so problems name the real member)."""

    def __init__(self, outer: EvidenceSource, device: str) -> None:
        self.outer, self.device, self.prefix = outer, device, f"{DEVICES_DIR}/{device}/"
        self.mode = outer.mode
        self.refused = []
        self.device_cert = outer.read(self.prefix + "device/cert.pem", MAX_SIDECAR_BYTES)
        raw = outer.read(self.prefix + "MANIFEST.json")
        try:
            manifest = json.loads(raw) if raw is not None else None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            manifest = None
            self.refused.append((self.prefix + "MANIFEST.json", "not valid JSON"))
        self.manifest = manifest if isinstance(manifest, dict) else None

    def iter_entries(self, prefix: str = "") -> Iterator[Entry]:
        yield from self.outer.iter_entries(self.prefix + prefix)  # only this device's records are read

    def media_files(self) -> list[tuple[str, str]]:
        return [(folder, name) for folder, name in self.outer.media_files() if (folder + "/").startswith(self.prefix)]

    def names(self, prefix: str) -> list[str]:
        return [n[len(self.prefix):] for n in self.outer.names(self.prefix + prefix)]

    def read(self, name: str, limit: int = MAX_META_BYTES) -> bytes | None:
        return self.outer.read(self.prefix + name, limit)

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes] | None]:
        with self.outer.open(self.prefix + name) as fh:
            yield fh

    @contextmanager
    def open_media(self, folder: str, name: str) -> Iterator[IO[bytes] | None]:
        with self.outer.open_media(folder, name) as fh:
            yield fh

    def media_digest(self, folder: str, name: str) -> tuple[int, str] | None:
        return self.outer.media_digest(folder, name)  # the bundle's own (bounded) way of hashing a member

"""The evidence bundle of an inspection report: each device's run of records and media, zipped atomically.

One device: the export format (``device/``, ``items/``, ``MANIFEST.json``, ``README.txt``). Several
devices of one site: the same export for each under ``devices/<id>/`` (each with its own ``MANIFEST.json``
naming its first and last seq), and a top-level ``MANIFEST.json`` (``evidence-bundle/2``) listing every
device's range and count. Record and certificate files are read without following symbolic links and
within the record size limit; media is streamed up to its sealed size.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from agent.core.errors import ConfigError, VerificationError
from agent.core.fsutil import fsync_dir
from agent.customs.inspection import evidence as ev
from agent.customs.inspection.model import now_iso
from agent.evidence.export import README
from agent.signing.layout import bucket_of
from agent.signing.sources import MAX_SIDECAR_BYTES, open_regular, read_regular

DEVICES_README = """
Devices:    this case ran on {count} devices of site {site}; each one's chain is in devices/<device id>/ in
            the export format above, checked on its own by evidence-agent verify:
{lines}
"""


def wait_for_items(device_dir: Path, first: int, last: int, timeout: float,
                   sleep: Callable[[float], None] = time.sleep) -> list[ev.Item]:
    """The items first..last once all records and their media have arrived (or what is there at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        items = ev.load_items(device_dir, first, last)
        complete = len(items) == last - first + 1 and all(it.media is not None or not it.record.get("media")
                                                          for it in items)
        if complete or time.monotonic() >= deadline:
            return items
        sleep(0.25)


def write_bundle(device_dir: Path, items: list[ev.Item], out: Path, extra: dict[str, bytes],
                 readme_extra: str = "") -> None:
    """An export-format zip of ``items`` (plus ``extra`` members), written atomically."""
    if not items:
        raise ConfigError(f"{device_dir}: no evidence items of this inspection have been received")
    files: dict[str, str] = {}
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        _write_device(z, device_dir, items, "", files)
        for name, data in extra.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
            files[name] = hashlib.sha256(data).hexdigest()
        first, last = items[0], items[-1]
        z.writestr("MANIFEST.json", json.dumps({
            "format": "evidence-bundle/1", "first_seq": first.seq, "last_seq": last.seq, "items": len(items),
            "since": first.wall, "until": last.wall, "created": now_iso(), "files": files}, indent=2, sort_keys=True))
        z.writestr("README.txt", README.format(name=out.name, first=first.seq, last=last.seq, since=first.wall,
                                               until=last.wall, first_time=first.wall, last_time=last.wall,
                                               device=first.record.get("device_id")) + readme_extra)
    _commit(tmp, out)


def write_devices_bundle(runs: dict[str, tuple[Path, list[ev.Item]]], out: Path, extra: dict[str, bytes],
                         site: str, readme_extra: str = "") -> None:
    """A several-device bundle: ``runs`` maps each device id to its ingested folder and items (primary
    first); ``extra`` members (the report) at the top level."""
    for device, (device_dir, items) in runs.items():
        if not items:
            raise ConfigError(f"{device_dir}: no evidence items of this inspection have been received from {device}")
    files: dict[str, str] = {}
    listed = []
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for device, (device_dir, items) in runs.items():
            prefix = f"devices/{device}/"
            own: dict[str, str] = {}
            _write_device(z, device_dir, items, prefix, own)
            first, last = items[0], items[-1]
            span = {"first_seq": first.seq, "last_seq": last.seq, "items": len(items), "since": first.wall,
                    "until": last.wall}
            z.writestr(prefix + "MANIFEST.json", json.dumps({"format": "evidence-bundle/1", "device_id": device,
                                                             **span, "created": now_iso(), "files": own},
                                                            indent=2, sort_keys=True))
            files.update({prefix + k: v for k, v in own.items()})
            listed.append({"device_id": device, **span})
        for name, data in extra.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
            files[name] = hashlib.sha256(data).hexdigest()
        z.writestr("MANIFEST.json", json.dumps({"format": "evidence-bundle/2", "site_id": site, "devices": listed,
                                                "created": now_iso(), "files": files}, indent=2, sort_keys=True))
        lines = "\n".join(f"              {d['device_id']}: seq {d['first_seq']}..{d['last_seq']} ({d['items']} items, "
                          f"{d['since']} .. {d['until']})" for d in listed)
        z.writestr("README.txt", README.format(name=out.name, first=listed[0]["first_seq"],
                                               last=listed[0]["last_seq"], since=listed[0]["since"],
                                               until=listed[0]["until"], first_time=listed[0]["since"],
                                               last_time=listed[0]["until"], device=", ".join(runs))
                   + DEVICES_README.format(count=len(runs), site=site, lines=lines) + readme_extra)
    _commit(tmp, out)


def _write_device(z: zipfile.ZipFile, device_dir: Path, items: list[ev.Item], prefix: str,
                  files: dict[str, str]) -> None:
    """One device's certificate, records and media under ``prefix``; their hashes into ``files``."""
    for name in ("cert.pem", "chain.pem"):
        src = device_dir / "device" / name
        if src.exists():
            data = _small(src)
            z.writestr(f"{prefix}device/{name}", data, compress_type=zipfile.ZIP_DEFLATED)
            files[f"device/{name}"] = hashlib.sha256(data).hexdigest()
    for it in items:
        rec_rel = f"items/{bucket_of(it.seq)}/{it.seq:012d}.{it.kind}.rec"
        data = _small(device_dir / rec_rel)
        z.writestr(prefix + rec_rel, data, compress_type=zipfile.ZIP_DEFLATED)
        files[rec_rel] = hashlib.sha256(data).hexdigest()
        media = it.record.get("media") or {}
        if it.media is not None and isinstance(media.get("size"), int):
            rel = f"items/{bucket_of(it.seq)}/{it.media.name}"
            _copy_media(z, it.media, prefix + rel, int(media["size"]))
            files[rel] = str(media.get("sha256"))


def _commit(tmp: Path, out: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    fsync_dir(out.parent)


def _small(path: Path) -> bytes:
    """A record or certificate file: never through a symbolic link, never over the record size limit."""
    try:
        size, data = read_regular(path, MAX_SIDECAR_BYTES)
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable or a symbolic link ({exc.strerror or exc})") from None
    if data is None:
        raise ConfigError(f"{path}: {size} bytes is over the {MAX_SIDECAR_BYTES}-byte record limit")
    return data


def _copy_media(z: zipfile.ZipFile, path: Path, member: str, size: int) -> None:
    """Stream a media file into the bundle (at most its sealed size; a symlink is refused)."""
    try:
        src = open_regular(path)
    except (OSError, VerificationError) as exc:
        raise ConfigError(f"{path}: media unreadable or a symbolic link ({exc})") from None
    with src, z.open(zipfile.ZipInfo(member, date_time=time.gmtime()[:6]), "w", force_zip64=True) as dst:
        left = size
        while left > 0 and (chunk := src.read(min(1 << 20, left))):
            dst.write(chunk)
            left -= len(chunk)



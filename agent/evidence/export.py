"""Export: a self-contained evidence bundle (zip) that verifies offline with `evidence-agent verify`.

It holds the media and sidecars of the chosen time range, the device certificate and chain, a
MANIFEST.json (range and file hashes, a convenience — the signed sidecars are the evidence) and a
README.txt telling the recipient how to check it without our software.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.anchor.bundle import export_log_files
from agent.core.errors import ConfigError, VaultError
from agent.core.fsutil import fsync_dir
from agent.evidence.vault import IndexRow, Vault

README = """\
Evidence bundle exported by evidence-agent.

Check it:   evidence-agent verify {name} --ca CUSTOMS_CA.pem
  exit 0 = every item intact, signed, in sequence and chained, and the device's certificate chains to --ca;
  exit 1 = problems, each named;
  exit 3 = intact, but nothing vouches for a signer: without --ca (or with a CA that did not issue the
           device's certificate) verify exits 3, never 0.
  CUSTOMS_CA.pem is the customs CA certificate that issued the device's certificate: customs hands it
  over with the bundle (ask the customs office or the technician who provisioned the device for it).

Without our software (see docs/evidence-format.md in the agent's source), for each item:
  head -n1 ITEM.rec | tr -d '\\n' > body.json                  # the exact signed bytes
  sed -n 2p ITEM.rec  -> "sig" (base64 DER ECDSA P-256/SHA-256) -> sig.der
  openssl x509 -in device/cert.pem -pubkey -noout > pub.pem
  openssl dgst -sha256 -verify pub.pem -signature sig.der body.json
  sha256sum MEDIA      # must equal media.sha256 in body.json
  sha256sum of body.json of item N must equal "prev" in item N+1.

Range: seq {first}..{last}, captured {first_time} .. {last_time}; device {device}.
Selected: since {since}, until {until}.
Anchors: log/checkpoints/*.note (signed checkpoints), log/anchors/*-tsa.json (RFC 3161 tokens over them),
log/proofs.json (inclusion proof of each record) -- see docs/anchoring.md.
"""


@dataclass(frozen=True)
class ExportResult:
    items: int
    first_seq: int | None
    last_seq: int | None
    bytes: int


def _parse_time(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--{what}: not an ISO 8601 time: {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1_000_000)


def _iso_us(wall_us: int) -> str:
    return dt.datetime.fromtimestamp(wall_us / 1e6, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def export_bundle(vault_path: Path, out: Path, *, since: str | None = None, until: str | None = None,
                  force: bool = False, progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Write the bundle to a hidden temp file beside ``out`` and rename it into place.

    An existing ``out`` is replaced only with ``force``; on any failure or Ctrl-C the temp file is removed,
    so nothing half-written is left behind. ``progress(done, total)`` hears of each item written.
    """
    since_us, until_us = _parse_time(since, "since"), _parse_time(until, "until")
    if not (vault_path / "items").is_dir():
        raise VaultError(f"{vault_path} is not a vault (no items/ folder)")
    if out.exists() and not force:
        raise ConfigError(f"--out {out}: already exists; give --force to replace it")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    vault = Vault(vault_path, exclusive=False)
    try:
        chosen = vault.rows(since_us, until_us)
        # One unbroken run of the chain: from the first to the last item captured in the range, with every item
        # sealed in between (a segment captured before `since` is sealed after the stills it overlaps).
        first, last = (chosen[0].seq, chosen[-1].seq) if chosen else (0, -1)
        rows = [r for r in vault.rows(None, None) if first <= r.seq <= last] if chosen else []
    finally:
        vault.close()
    if not rows:
        raise VaultError(f"{vault_path}: no items in the chosen range")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        _write(vault_path, tmp, rows, out.name, since, until, progress)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:  # Ctrl-C (KeyboardInterrupt), disk full, a vanished file: no temp file left
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out.parent)
    return ExportResult(len(rows), rows[0].seq, rows[-1].seq, out.stat().st_size)


def _write(vault_path: Path, tmp: Path, rows: list[IndexRow], name: str, since: str | None, until: str | None,
           progress: Callable[[int, int], None] | None) -> None:
    files: dict[str, str] = {}
    with zipfile.ZipFile(tmp, "w") as z:
        for name in ("cert.pem", "chain.pem"):
            src = vault_path / "device" / name
            if src.exists():
                z.write(src, f"device/{name}", compress_type=zipfile.ZIP_DEFLATED)
                files[f"device/{name}"] = hashlib.sha256(src.read_bytes()).hexdigest()
        for done, row in enumerate(rows, 1):
            if progress is not None:
                progress(done, len(rows))
            for rel in (row.media_path, row.record_path):
                if rel is None:
                    continue
                src = vault_path / rel
                compress = zipfile.ZIP_DEFLATED if rel.endswith(".rec") else zipfile.ZIP_STORED
                z.write(src, rel, compress_type=compress)
                h = hashlib.sha256()
                with open(src, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
                files[rel] = h.hexdigest()
        for name, data in export_log_files(vault_path, [r.seq for r in rows]).items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
            files[name] = hashlib.sha256(data).hexdigest()
        first, last = rows[0], rows[-1]
        manifest = {
            "format": "evidence-bundle/1",
            "first_seq": first.seq, "last_seq": last.seq, "items": len(rows),
            "since": since, "until": until,
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "files": files,
        }
        z.writestr("MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True))
        device = json.loads((vault_path / first.record_path).read_bytes().split(b"\n", 1)[0])["device_id"]
        z.writestr("README.txt", README.format(name=name, first=first.seq, last=last.seq,
                                               first_time=_iso_us(first.wall_us), last_time=_iso_us(last.wall_us),
                                               since=since or "(all)", until=until or "(all)", device=device))

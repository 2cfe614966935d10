"""A signed inspection report built the way ``evidence-officer inspection report`` builds it, for attacks.

A device with its own development CA seals an inspection (start, check-in stills, an alert, decisions,
end) into ``EVIDENCE/<device>/``; an officer whose certificate a separate officer CA issued signs the
report; the device's seal is made by the real sealer (``FakeDevice`` stands in for the broker). Hostile
device strings and a decompression-bomb still are optional. Zip helpers rewrite one member at a time.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from agent.core.clock import ManualClock
from agent.core.fsutil import atomic_write
from agent.customs.inspection.model import Entry, Inspection, InspectionStore
from agent.customs.keys import OfficerKey, init_officer
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import CA_FILE, DeviceIdentity, init_identity, load_identity, make_ca
from tests.support.helpers import REPO, moment

DEVICE, SITE, CASE, OFFICER = "cam-insp", "farm-7", "C-2026/0099", "officer-alice"
LAT, LON = 31.2304, 121.4737
SQUARE = [(LAT - 0.001, LON - 0.001), (LAT - 0.001, LON + 0.001), (LAT + 0.001, LON + 0.001),
          (LAT + 0.001, LON - 0.001)]


def jpeg_bytes(color: tuple[int, int, int] = (200, 60, 40)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, "JPEG")
    return buf.getvalue()


def png_bomb(side: int = 30_000) -> bytes:
    """A valid PNG of ``side`` x ``side`` 8-bit grey pixels, all zero: a few hundred KiB that decode to ~GiB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class FakeDevice:
    """The broker + device for the report's seal step: the real sealer seals what the command asks."""

    def __init__(self, sealer: Sealer, clock: ManualClock) -> None:
        self.sealer, self.clock = sealer, clock

    def request(self, site: str, device: str, command: str, args: dict[str, Any] | None = None, *,
                nonce: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        assert command == "inspection.report" and args is not None
        item = self.sealer.seal("report", moment(self.clock), extra={**args, "officer": OFFICER})
        return {"ok": True, "result": {"seq": item.seq, "record_hash": item.record_hash}}


@dataclass
class Built:
    """An inspection's evidence and session, ready for ``build_report`` (in-process or through the CLI)."""

    root: Path
    evidence: Path
    data: Path  # the console/CLI session folder (``inspection --data``)
    officer_keys: Path
    officer_ca: Path
    device_ca: Path
    officer: OfficerKey
    identity: DeviceIdentity
    sealer: Sealer
    vault: Vault
    clock: ManualClock
    bomb_seq: int | None

    def service(self) -> Any:
        from agent.customs.inspection.service import InspectionService

        return InspectionService(InspectionStore(self.data), CASE, FakeDevice(self.sealer, self.clock),
                                 officer=OFFICER)

    def close(self) -> None:
        self.vault.close()


def officer_with_ca(root: Path, name: str = OFFICER, org: str = "Customs") -> tuple[OfficerKey, Path]:
    """An officer key issued by an officer CA of its own; returns it and the CA certificate file."""
    ca_key, ca = make_ca(f"{org} Officer CA", org)
    ca_dir = root / f"{name}-ca"
    ca_dir.mkdir(parents=True)
    atomic_write(ca_dir / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    atomic_write(ca_dir / "ca.key", ca_key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()), mode=0o600)
    return init_officer(root / f"{name}-keys", name, organization=org, ca_cert=ca_dir / "ca.pem",
                        ca_key=ca_dir / "ca.key"), ca_dir / "ca.pem"


def seal_inspection(root: Path, *, hostile: dict[str, Any] | None = None, bomb: bytes | None = None,
                    document: tuple[bytes, dict[str, Any]] | None = None) -> Built:
    """Evidence of one ended inspection, and its session (``hostile`` goes into the device-answered gps;
    ``document``: the identity-document check-in's JPEG and record fields, e.g. a full-resolution still)."""
    init_identity(root / "device-keys", DEVICE, "Test Customs")
    identity = load_identity(root / "device-keys")
    clock = ManualClock(wall=time.time_ns())
    vault = Vault(root / "evidence" / DEVICE)
    sealer = Sealer(vault, identity, device_id=DEVICE, site_id=SITE)
    sealer.start(moment(clock))
    sealer.seal("still", moment(clock), media=jpeg_bytes((1, 2, 3)), media_type="image/jpeg", ext="jpg")
    start = sealer.seal("inspection_start", moment(clock), extra={"case": CASE})
    store = InspectionStore(root / "data")
    insp = Inspection(case=CASE, enterprise="Green Fields Ltd", device=DEVICE, site=SITE, polygon=SQUARE,
                      state="started", started_at="2026-12-07T10:00:00Z", start_seq=start.seq,
                      representative=(hostile or {}).get("representative", "Li Wei"))
    gps = {"fix": "3d", "lat": LAT, "lon": LON, "hdop": 0.9, "satellites": 9, **(hostile or {}).get("gps", {})}
    for label in ("location", "identity_document"):
        clock.advance(1)
        media, fields = document if document is not None and label == "identity_document" else (jpeg_bytes(), {})
        item = sealer.seal("still", moment(clock), media=media, media_type="image/jpeg", ext="jpg",
                           extra={"label": label, **fields})
        entry = Entry(at="2026-12-07T10:01:00Z", kind="checkin", label=label, seq=item.seq, ok=True,
                      record_hash=item.record_hash, note=(hostile or {}).get("note"),
                      details={"gps": gps, "location": {"inside": True, "quality": gps.get("fix")}})
        insp.checkin[label] = entry
        insp.entries.append(entry)
    bomb_seq = None
    if bomb is not None:
        clock.advance(1)
        item = sealer.seal("still", moment(clock), media=bomb, media_type="image/png", ext="png",
                           extra={"label": "inspection"})
        bomb_seq = item.seq
        insp.entries.append(Entry(at="2026-12-07T10:02:00Z", kind="snapshot", label="inspection", seq=item.seq,
                                  record_hash=item.record_hash, details={"gps": gps}))
    clock.advance(1)
    sealer.seal("event", moment(clock), extra={"type": "too_dark", "phase": "onset"})
    for decision in ("continue", "shift_to_onsite"):
        clock.advance(1)
        item = sealer.seal("decision", moment(clock), extra={"case": CASE, "decision": decision,
                                                             "reason": "lens covered"})
        insp.entries.append(Entry(at="2026-12-07T10:10:00Z", kind="decision", label=decision, seq=item.seq,
                                  record_hash=item.record_hash, note="lens covered"))
    end = sealer.seal("inspection_end", moment(clock), extra={"case": CASE})
    insp.state, insp.ended_at, insp.end_seq, insp.outcome = "ended", "2026-12-07T10:25:00Z", end.seq, \
        "shift_to_onsite"
    store.create(insp)
    officer, officer_ca = officer_with_ca(root)
    return Built(root, root / "evidence", root / "data", root / f"{OFFICER}-keys", officer_ca,
                 root / "device-keys" / CA_FILE, officer, identity, sealer, vault, clock, bomb_seq)


def officer_report(built: Built, out: Path, *extra: str, limit_as: int | None = None) \
        -> subprocess.CompletedProcess[str]:
    """`evidence-officer inspection report` (no broker: --no-seal), optionally under an address-space limit;
    ``extra``: more options (``--lang zh``)."""
    def preexec() -> None:
        import resource

        if limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    return subprocess.run([sys.executable, "-m", "agent.customs.cli", "inspection", "--data", str(built.data),
                           "report", CASE, "--evidence", str(built.evidence), "--out", str(out), "--keys",
                           str(built.officer_keys), "--no-seal", "--wait", "0", *extra], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, timeout=300,
                          preexec_fn=preexec)


def build(built: Built, out: Path) -> Any:
    """The report, built in-process exactly as the CLI does (with the device's seal)."""
    from agent.customs.inspection.report import build_report

    return build_report(built.service(), built.evidence, out, built.officer, wait_s=0)


def rewrite(src: Path, dst: Path, change: Callable[[str, bytes], bytes | None],
            extra: Sequence[tuple[str, bytes]] = (), first: Sequence[tuple[str, bytes]] = ()) -> Path:
    """Copy a zip member by member: ``change(name, data)`` returns new bytes, or None to drop the member;
    ``first`` members go before the copied ones, ``extra`` after (duplicate names allowed, as an
    attacker's zip tool would write them: `unzip` extracts the first copy, Python's zipfile reads the last)."""
    import warnings

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        for name, data in first:
            zout.writestr(name, data)
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
        for name, data in extra:
            zout.writestr(name, data)
    return dst


def manifest_of(bundle: Path) -> dict[str, Any]:
    with zipfile.ZipFile(bundle) as z:
        out: dict[str, Any] = json.loads(z.read("report/manifest.json"))
    return out

"""Verify one JPEG or MP4 on its own -- renamed, e-mailed, without its ``.rec`` -- from its C2PA manifest.

Evidence travels as single files (case files, e-mail). What the file itself proves: its embedded C2PA
manifest says which device (certificate subject, our record assertion), when (exif:DateTimeOriginal,
the signature's RFC 3161 time-stamp when there is one) and where (exif:GPS*); c2pa validates the
signature and the hash binding over every byte of the file, and -- given trusted CAs -- the
certificate chain. With ``against`` (a vault, a copy of its files or an export bundle) the file is
also found by SHA-256 among the sealed records, and that source's own verification (chain, anchors)
is reported for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.core.errors import VerificationError
from agent.signing.records import parse_sidecar
from agent.signing.sources import open_source
from agent.signing.verify import Checker, check

MIME = {b"\xff\xd8": "image/jpeg"}
UNTRUSTED = "signingCredential.untrusted"
#: validation codes that only say "no trust list was given"; anything else in ``failure`` is a real problem
NOT_CHECKED = frozenset({UNTRUSTED})


def sniff_mime(head: bytes) -> str | None:
    """image/jpeg or video/mp4 by content (a renamed file keeps its bytes, not its name)."""
    if head[:2] == b"\xff\xd8":
        return "image/jpeg"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    return None


def is_lone_candidate(path: Path) -> bool:
    """A JPEG/MP4 file (by content) that is not a vault item with its sidecar beside it."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        mime = sniff_mime(fh.read(12))
    if mime is None:
        return False
    return not path.with_suffix(".rec").exists()


@dataclass
class LoneReport:
    path: str
    media_type: str | None = None
    sha256: str | None = None
    size: int = 0
    manifest: str | None = None
    signature: str = "not checked"  # "valid" / "invalid"
    chain: str = "not checked"  # "trusted" / "not checked against a trusted CA (give --ca)" / "untrusted"
    device: dict[str, Any] = field(default_factory=dict)
    captured: str | None = None
    timestamp: dict[str, Any] | None = None
    gps: dict[str, Any] | None = None
    exif: dict[str, Any] | None = None
    against: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "mode": "lone", "path": self.path, "media_type": self.media_type,
                "sha256": self.sha256, "size": self.size, "manifest": self.manifest, "signature": self.signature,
                "chain": self.chain, "device": self.device, "captured": self.captured,
                "timestamp": self.timestamp, "gps": self.gps, "exif": self.exif, "against": self.against,
                "problems": self.problems, "warnings": self.warnings}


def _dms_to_deg(text: str) -> float | None:
    """XMP GPSCoordinate "DDD,MM.mmmmK" back to signed degrees."""
    try:
        deg, rest = text.split(",", 1)
        ref = rest[-1]
        value = float(deg) + float(rest[:-1]) / 60
    except (ValueError, IndexError):
        return None
    return -value if ref in "SW" else value


def _read(path: Path, mime: str, trust_pem: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    import c2pa

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False}}
    if trust_pem:
        settings = {"verify": {"verify_trust": True, "remote_manifest_fetch": False},
                    "trust": {"trust_anchors": trust_pem}}
    try:
        with c2pa.Context.from_dict(settings) as ctx, open(path, "rb") as fh, \
                c2pa.Reader(mime, fh, context=ctx) as reader:
            return json.loads(reader.json()), json.loads(reader.crjson())
    except c2pa.C2paError as exc:
        raise VerificationError(f"{path.name}: no readable C2PA manifest ({exc})") from exc


def _assertion(manifest: dict[str, Any], label: str) -> dict[str, Any]:
    for a in manifest.get("assertions", []):
        if a.get("label") == label and isinstance(a.get("data"), dict):
            data: dict[str, Any] = a["data"]
            return data
    return {}


def check_lone(path: Path, *, trusted_ca: Sequence[x509.Certificate] = (), against: Path | None = None,
               checkers: Sequence[Checker] = ()) -> LoneReport:
    """Everything the file proves by itself, plus (``against``) its place in a verified chain."""
    report = LoneReport(path=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerificationError(f"{path}: cannot read ({exc.strerror})") from None
    report.sha256, report.size = hashlib.sha256(data).hexdigest(), len(data)
    report.media_type = sniff_mime(data[:12])
    if report.media_type is None:
        raise VerificationError(f"{path}: neither a JPEG nor an MP4 file")
    trust_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in trusted_ca) or None
    try:
        store, cr = _read(path, report.media_type, trust_pem)
    except VerificationError as exc:
        report.problems.append(str(exc))
        store, cr = {}, {}
    if store:
        _judge_manifest(report, store, cr, bool(trust_pem))
    if report.media_type == "image/jpeg":
        from agent.signing.exif import read_exif  # only a lone JPEG needs it (and its ~10 ms import)

        report.exif = read_exif(data) or None
        _compare_exif(report)
    if against is not None:
        report.against = _find(report, against, trusted_ca, checkers)
    return report


def _judge_manifest(report: LoneReport, store: dict[str, Any], cr: dict[str, Any], trusted: bool) -> None:
    label = store.get("active_manifest")
    report.manifest = label
    manifest = (store.get("manifests") or {}).get(label) or {}
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [f.get("code", "?") for f in results.get("failure", [])]
    successes = {s.get("code") for s in results.get("success", [])}
    bad = [c for c in failures if c not in NOT_CHECKED]
    report.signature = "valid" if "claimSignature.validated" in successes and not bad else "invalid"
    for code in bad:
        report.problems.append(f"C2PA {code}")
    if trusted:
        report.chain = "trusted" if "signingCredential.trusted" in successes else "untrusted"
        if report.chain != "trusted":
            report.problems.append("certificate chain does not lead to a trusted CA (--ca)")
    else:
        report.chain = "not checked against a trusted CA (give --ca)"
    sig = manifest.get("signature_info") or {}
    record = _assertion(manifest, "org.evidence-agent.record")
    report.device = {"certificate_cn": sig.get("common_name"), "issuer": sig.get("issuer"),
                     "device_id": record.get("device_id"), "site_id": record.get("site_id")}
    if record.get("device_id") and sig.get("common_name") and record["device_id"] != sig["common_name"]:
        report.problems.append(f"manifest names device {record['device_id']!r} but is signed by "
                               f"{sig['common_name']!r}")
    meta = _assertion(manifest, "c2pa.metadata")
    report.captured = meta.get("exif:DateTimeOriginal")
    lat, lon = meta.get("exif:GPSLatitude"), meta.get("exif:GPSLongitude")
    if isinstance(lat, str) and isinstance(lon, str):
        la, lo = _dms_to_deg(lat), _dms_to_deg(lon)
        report.gps = {"lat": None if la is None else round(la, 7), "lon": None if lo is None else round(lo, 7),
                      "fix_time": meta.get("exif:GPSTimeStamp")}
    crm = (cr.get("manifests") or [{}])[0]
    tsi = (crm.get("signature") or {}).get("timeStampInfo")
    if tsi:
        report.timestamp = {"time": tsi.get("timestamp"),
                            "tsa": ((tsi.get("certificateInfo") or {}).get("subject") or {}).get("CN"),
                            "validated": "timeStamp.validated" in successes}
    if report.captured is None:
        report.warnings.append("the manifest states no capture time (made before capture times were embedded)")


def _iso(text: str | None) -> dt.datetime | None:
    try:
        return None if not text else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _compare_exif(report: LoneReport) -> None:
    """EXIF is covered by the C2PA hash; it must say the same time and place as the manifest."""
    ex = report.exif
    if not ex:
        report.warnings.append("no EXIF in the JPEG")
        return
    a, b = _iso(ex.get("captured")), _iso(report.captured)
    if a and b and abs((a - b).total_seconds()) > 1e-3:
        report.problems.append(f"EXIF capture time {ex['captured']} differs from the manifest's {report.captured}")
    g = ex.get("gps")
    if report.gps and g and report.gps.get("lat") is not None and (
            abs(g["lat"] - report.gps["lat"]) > 1e-5 or abs(g["lon"] - report.gps["lon"]) > 1e-5):
        report.problems.append("EXIF GPS position differs from the manifest's")
    if (g is None) != (report.gps is None):
        report.problems.append("EXIF and manifest disagree on whether there was a GPS fix")


def _find(report: LoneReport, against: Path, trusted_ca: Sequence[x509.Certificate],
          checkers: Sequence[Checker]) -> dict[str, Any]:
    """The sealed record naming this file's SHA-256, and what verifying its source says about it."""
    src = open_source(against)
    found: dict[str, Any] | None = None
    try:
        for entry in src.entries():
            try:
                rec = parse_sidecar(entry.sidecar, entry.name).record
            except (ValueError, VerificationError):
                continue
            media = rec.get("media") or {}
            if media.get("sha256") == report.sha256:
                found = {"seq": rec.get("seq"), "kind": rec.get("kind"), "name": media.get("name"),
                         "record": entry.name, "device_id": rec.get("device_id"),
                         "captured": (rec.get("captured") or {}).get("wall"), "gps": rec.get("gps")}
                break
    finally:
        src.close()
    if found is None:
        report.problems.append(f"no sealed record in {against} names this file's SHA-256 {report.sha256}")
        return {"path": str(against), "found": False}
    full = check(against, trusted_ca=trusted_ca, checkers=checkers).to_json()
    where = f"seq {found['seq']}"
    mine = [p for p in full["problems"] if str(p.get("item", "")).startswith(where + " ") or p.get("item") == where]
    chain_ok = bool(full["ok"])
    if not chain_ok:
        report.problems.append(f"{against} does not verify ({len(full['problems'])} problem(s)); "
                               f"run `evidence-agent verify {against}`")
    cover = next((c for c in (full.get("anchoring") or {}).get("coverage", [])
                  if c["seq_from"] <= int(found["seq"]) <= c["seq_to"]), None)
    if report.captured and found["captured"]:
        a, b = _iso(report.captured), _iso(found["captured"])
        if a and b and abs((a - b).total_seconds()) > 1e-3:
            report.problems.append(f"manifest capture time {report.captured} differs from the record's "
                                   f"{found['captured']}")
    return {"path": str(against), "found": True, **found, "source_ok": chain_ok, "source_items": full["items"],
            "problems_for_item": mine, "anchored": cover}


def print_lone(r: LoneReport) -> None:
    """The human form of the report (``--json`` prints :meth:`LoneReport.to_json`)."""
    print(f"{r.path}: {'OK' if r.ok else 'FAILED'} ({r.media_type}, {r.size} bytes, sha256 {r.sha256})")
    d = r.device
    print(f"  device:    {d.get('device_id') or '?'} at site {d.get('site_id') or '?'} "
          f"(signed by certificate CN={d.get('certificate_cn')}, issuer {d.get('issuer')})")
    print(f"  captured:  {r.captured or 'not stated'}")
    if r.timestamp:
        print(f"  time-stamp: {r.timestamp['time']} by {r.timestamp['tsa']}"
              f"{'' if r.timestamp['validated'] else ' (NOT validated)'}")
    else:
        print("  time-stamp: none on the C2PA signature")
    print("  where:     " + (f"{r.gps['lat']:.7f}, {r.gps['lon']:.7f} (fix {r.gps['fix_time']})"
                             if r.gps and r.gps.get("lat") is not None else "no GPS fix stated"))
    print(f"  signature: {r.signature} (C2PA manifest {r.manifest})")
    print(f"  chain:     {r.chain}")
    a = r.against
    if a is not None:
        if a.get("found"):
            cover = a.get("anchored") or {}
            anchored = (f"existed no later than {cover['existed_no_later_than']} ({cover['anchor']})"
                        if cover.get("existed_no_later_than") else "not yet anchored")
            print(f"  sealed:    seq {a['seq']} {a['kind']} {a['name']} in {a['path']} — source "
                  f"{'verifies' if a['source_ok'] else 'does NOT verify'} ({a['source_items']} items); {anchored}")
        else:
            print(f"  sealed:    not found in {a['path']}")
    for p in r.problems:
        print(f"  PROBLEM  {p}")
    for w in r.warnings:
        print(f"  warning  {w}")

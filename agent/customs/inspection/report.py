"""Build the inspection report (HTML + PDF), sign its manifest with the officer's key, have the device seal
the manifest's hash, and pack everything into an evidence bundle that ``evidence-agent verify`` checks.

The bundle uses the export format (``device/``, ``items/``, ``MANIFEST.json``, ``README.txt``) plus
``report/``; its range runs from the ``inspection_start`` record to the device's ``report`` record, so the
chain is continuous and the seal of the report is inside it. The signed manifest names that run exactly
(``range``: first and last seq and the count) and every item in it.

One report per case, in numbered versions: building it again needs a reason and makes version N+1, whose
files carry the version (``CASE-vN-report.pdf``, ``CASE-vN-bundle.zip``) and whose signed manifest names the
version, the SHA-256 of the manifest it supersedes and the reason; every version is kept and sealed.

The PDF is rendered with a URL fetcher that serves only the page's own thumbnails (from memory) and
refuses every other URL (``file:``, ``http(s):``, the console's own address, any ``data:`` URI it did
not make). Evidence files are read without following symbolic links and within size limits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.anchor.verify import anchor_checker
from agent.core.errors import ConfigError, VerificationError
from agent.core.fsutil import atomic_write, fsync_dir
from agent.customs.i18n.catalog import DEFAULT_REPORT_LANG
from agent.customs.inspection import evidence as ev
from agent.customs.inspection.html import Rendered, render
from agent.customs.inspection.model import Entry, now_iso
from agent.customs.inspection.service import InspectionService
from agent.customs.keys import OfficerKey
from agent.evidence.export import README
from agent.signing.layout import bucket_of
from agent.signing.report import MANIFEST, REPORT_DIR, REPORT_TYP, file_entry, report_checker, sign_report
from agent.signing.sources import MAX_SIDECAR_BYTES, open_regular, read_regular
from agent.signing.verify import Report, check

log = logging.getLogger(__name__)


MAX_REASON = 500  # characters of the reason for a new report version


@dataclass(frozen=True)
class Version:
    """Which version of the case's report this is, what it supersedes (manifest SHA-256) and why."""

    number: int
    supersedes: str | None = None
    supersedes_sealed_seq: int | None = None
    reason: str | None = None


def next_version(insp: Any, reason: str | None) -> Version:
    """Version 1, or the next one after the case's current report (which then needs a reason)."""
    why = " ".join((reason or "").split()) or None
    if why is not None and len(why) > MAX_REASON:
        raise ConfigError(f"--reason: {len(why)} characters is over the {MAX_REASON}-character limit")
    prev = insp.report if isinstance(insp.report, dict) and insp.report.get("manifest_sha256") else None
    if prev is None:
        return Version(1, reason=why)
    number = int(prev.get("version") or 1)
    if why is None:
        raise ConfigError(f"inspection {insp.case} already has signed report v{number}: building it again makes "
                          f"v{number + 1}, which supersedes it; give the reason (--reason TEXT)")
    return Version(number + 1, str(prev["manifest_sha256"]), prev.get("sealed_seq"), why)


@dataclass(frozen=True)
class ReportResult:
    bundle: Path
    pdf: Path
    html: Path
    manifest_sha256: str
    items: int
    sealed_seq: int | None
    verify: dict[str, Any]
    seconds: dict[str, float]
    findings: tuple[str, ...] = ()  # stills that could not be rendered, and URLs the PDF renderer refused
    version: int = 1
    supersedes: str | None = None


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


REPORT_README = """
Report:     report/report.pdf (signed by officer {officer} with a PAdES signature any PDF reader shows),
            report/report.html, report/manifest.json (the officer-signed manifest; its SHA-256 is sealed by
            the device in a "report" record). This is version {version} of the report of case {case}{supersedes}.
Check it:   evidence-agent verify {name} --ca CUSTOMS_CA.pem --officer-ca OFFICER_CA.pem
  OFFICER_CA.pem is the CA certificate that issued the officer's certificate ({issuer}); customs hands it
  over with the report, together with CUSTOMS_CA.pem. Without --officer-ca verify exits 3: the report is
  intact, but nothing vouches for the officer.
"""


def write_bundle(device_dir: Path, items: list[ev.Item], out: Path, extra: dict[str, bytes],
                 readme_extra: str = "") -> None:
    """An export-format zip of ``items`` (plus ``extra`` members), written atomically."""
    if not items:
        raise ConfigError(f"{device_dir}: no evidence items of this inspection have been received")
    files: dict[str, str] = {}
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for name in ("cert.pem", "chain.pem"):
            src = device_dir / "device" / name
            if src.exists():
                data = _small(src)
                z.writestr(f"device/{name}", data, compress_type=zipfile.ZIP_DEFLATED)
                files[f"device/{name}"] = hashlib.sha256(data).hexdigest()
        for it in items:
            rec_rel = f"items/{bucket_of(it.seq)}/{it.seq:012d}.{it.kind}.rec"
            data = _small(device_dir / rec_rel)
            z.writestr(rec_rel, data, compress_type=zipfile.ZIP_DEFLATED)
            files[rec_rel] = hashlib.sha256(data).hexdigest()
            media = it.record.get("media") or {}
            if it.media is not None and isinstance(media.get("size"), int):
                rel = f"items/{bucket_of(it.seq)}/{it.media.name}"
                _copy_media(z, it.media, rel, int(media["size"]))
                files[rel] = str(media.get("sha256"))
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


def verify_bundle(path: Path, officer: OfficerKey | None = None) -> Report:
    """The checks of ``evidence-agent verify`` that the foundation offers: records, chain, anchors, report
    (the officer's own CA stands in for the verifier's --officer-ca)."""
    officer_cas = list(officer.chain) if officer is not None else []
    return check(path, checkers=[anchor_checker(), report_checker(officer_cas)])


class _Fetcher:
    """WeasyPrint's URL fetcher for the report: the page's own resources from memory; everything else refused."""

    def __init__(self, resources: dict[str, tuple[bytes, str]]) -> None:
        self.resources = resources
        self.refused: list[str] = []

    def build(self) -> Any:
        from weasyprint import urls

        outer = self
        if hasattr(urls, "URLFetcher"):  # WeasyPrint >= 68: a URLFetcher subclass
            class Fetcher(urls.URLFetcher):  # type: ignore[misc, name-defined]
                def fetch(self, url: str, headers: Any = None) -> Any:
                    data, mime = outer.serve(url)
                    return urls.URLFetcherResponse(url, data, headers={"Content-Type": mime})

            return Fetcher()

        def fetch(url: str) -> dict[str, Any]:  # older WeasyPrint: a function returning a dict
            data, mime = outer.serve(url)
            return {"string": data, "mime_type": mime}

        return fetch

    def serve(self, url: str) -> tuple[bytes, str]:
        found = self.resources.get(url)
        if found is None:
            self.refused.append(url[:200])
            raise ValueError("the report loads nothing it did not make itself")
        return found


def render_pdf(page: Rendered) -> tuple[bytes, list[str]]:
    """The PDF of a rendered page, and the URLs it tried to load and was refused."""
    for name in ("weasyprint", "weasyprint.progress", "fontTools"):  # before the import: it logs while loading
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # refused URLs are reported by us, once
    import weasyprint

    fetcher = _Fetcher(page.resources)
    pdf = weasyprint.HTML(string=page.html, url_fetcher=fetcher.build()).write_pdf()
    assert pdf is not None
    return pdf, fetcher.refused


def _verification(report: Report, items: list[ev.Item]) -> dict[str, Any]:
    out = report.to_json()
    out["receipts"] = [{"seq": it.seq, "kind": it.kind, "at": it.wall, "record_hash": it.record_hash}
                       for it in items if it.kind in ("checkpoint", "receipt")]
    return out


def build_report(service: InspectionService, evidence_root: Path, out_dir: Path, officer: OfficerKey, *,
                 seal: bool = True, wait_s: float = 30.0, tsa_url: str | None = None,
                 reason: str | None = None, lang: str = DEFAULT_REPORT_LANG) -> ReportResult:
    """The whole end of an inspection: report files, the PDF signed by the officer (PAdES; time-stamped by
    ``tsa_url`` when given), signed manifest, device seal, verified bundle. A case that has a report gets a
    new version, which needs ``reason``. ``lang``: ``zh-en`` (Chinese with English), ``zh`` or ``en``."""
    insp = service.inspection
    if insp.state not in ("ended", "reported") or insp.start_seq is None or insp.end_seq is None:
        raise ConfigError(f"inspection {insp.case} is {insp.state}: end it before building the report")
    version = next_version(insp, reason)
    device_dir = ev.device_dir_of(evidence_root, insp.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    items = wait_for_items(device_dir, insp.start_seq, insp.end_seq, wait_s)
    timings["collect_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    pre = out_dir / ".pre-bundle.zip"
    write_bundle(device_dir, items, pre, {})
    verification = _verification(verify_bundle(pre), items)
    pre.unlink()
    timings["verify_evidence_s"] = time.perf_counter() - t
    t = time.perf_counter()
    issuer = officer.cert.issuer.rfc4514_string() if officer.chain else None
    if not officer.chain:
        log.warning("officer certificate %s has no issuing CA (ca.pem): verify --officer-ca cannot trust this "
                    "report; issue the officer key from the customs CA (evidence-officer keys init --ca-cert)",
                    officer.officer_id)
    page = render(insp, items, verification, officer=officer.officer_id, officer_key_id=officer.key_id,
                  officer_issuer=issuer, version=version, lang=lang)
    html = page.html.encode()
    timings["html_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pdf, refused = render_pdf(page)
    timings["pdf_s"] = time.perf_counter() - t
    t = time.perf_counter()
    from agent.customs.legal.officer import sign_report_pdf

    # the manifest hashes the signed PDF: the officer's PAdES signature travels inside the file itself
    pdf = sign_report_pdf(pdf, officer.private_key, officer.cert, list(officer.chain), tsa_url=tsa_url,
                          title=f"{insp.case} · {insp.enterprise}")
    timings["sign_pdf_s"] = time.perf_counter() - t
    findings = (*page.findings, *(f"the PDF renderer refused to load {u}" for u in refused))
    body = {"typ": REPORT_TYP, "case": insp.case, "device_id": insp.device, "site_id": insp.site,
            "enterprise": insp.enterprise, "officer": officer.officer_id, "created": now_iso(),
            "version": version.number, "supersedes": version.supersedes, "reason": version.reason,
            "started": insp.started_at, "ended": insp.ended_at, "outcome": insp.outcome,
            "range": {"first_seq": insp.start_seq, "last_seq": insp.end_seq,
                      "count": insp.end_seq - insp.start_seq + 1},
            "files": {"report.pdf": file_entry(pdf), "report.html": file_entry(html)},
            "verification": {"ok": verification["ok"], "problems": len(verification["problems"])},
            "items": [{"seq": it.seq, "kind": it.kind, "record_hash": it.record_hash,
                       "media_sha256": (it.record.get("media") or {}).get("sha256")} for it in items]}
    manifest = sign_report(body, officer.private_key, officer.cert, officer.chain)
    sha = hashlib.sha256(manifest).hexdigest()
    safe = f'{insp.case.replace("/", "_")}-v{version.number}'
    for name, data in (("report.pdf", pdf), ("report.html", html), (MANIFEST, manifest)):
        atomic_write(out_dir / f"{safe}-{name}", data)
    sealed_seq: int | None = None
    last = insp.end_seq
    if seal:
        sealed_seq = int(service.seal_report(sha, len(manifest), len(items))["seq"])
        last = max(last, sealed_seq)
    t = time.perf_counter()
    final_items = wait_for_items(device_dir, insp.start_seq, last, wait_s)
    timings["wait_seal_s"] = time.perf_counter() - t
    t = time.perf_counter()
    bundle = out_dir / f"{safe}-bundle.zip"
    write_bundle(device_dir, final_items, bundle, {f"{REPORT_DIR}/report.pdf": pdf, f"{REPORT_DIR}/report.html": html,
                                                   f"{REPORT_DIR}/{MANIFEST}": manifest},
                 REPORT_README.format(officer=officer.officer_id, version=version.number, case=insp.case,
                                      name=bundle.name, issuer=issuer or "no issuing CA: not verifiable",
                                      supersedes=(f"; it supersedes version {version.number - 1} (manifest "
                                                  f"SHA-256 {version.supersedes}) because: {version.reason}")
                                      if version.supersedes else ""))
    final = verify_bundle(bundle, officer).to_json()
    timings["bundle_and_verify_s"] = time.perf_counter() - t
    insp.state = "reported"
    prev = dict(insp.report or {})
    history = [*(prev.pop("history", None) or []), prev] if prev else []
    insp.report = {"at": now_iso(), "bundle": str(bundle), "manifest_sha256": sha, "sealed_seq": sealed_seq,
                   "items": len(items), "verified": final["ok"], "version": version.number,
                   "supersedes": version.supersedes, "reason": version.reason, "history": history}
    note = f"report v{version.number} signed; manifest SHA-256 {sha}"
    if version.supersedes:
        note += f"; supersedes v{version.number - 1} ({version.supersedes[:16]}…): {version.reason}"
    service._add(Entry(at=now_iso(), kind="report", seq=sealed_seq, officer=officer.officer_id, ok=final["ok"],
                       note=note, details={"bundle": str(bundle), "version": version.number,
                                           "supersedes": version.supersedes, "reason": version.reason}))
    return ReportResult(bundle, out_dir / f"{safe}-report.pdf", out_dir / f"{safe}-report.html", sha, len(items),
                        sealed_seq, final, timings, findings, version.number, version.supersedes)

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
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.anchor.verify import anchor_checker
from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.customs.i18n.catalog import DEFAULT_REPORT_LANG
from agent.customs.inspection import evidence as ev
from agent.customs.inspection.bundle import wait_for_items, write_bundle, write_devices_bundle
from agent.customs.inspection.html import Rendered, render
from agent.customs.inspection.model import Entry, now_iso
from agent.customs.inspection.service import InspectionService
from agent.customs.keys import OfficerKey
from agent.signing.report import (
    MANIFEST,
    REPORT_DIR,
    REPORT_TYP,
    REPORT_TYP_DEVICES,
    file_entry,
    report_checker,
    sign_report,
)
from agent.signing.still_checks import still_checker
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


REPORT_README = """
Report:     report/report.pdf (signed by officer {officer} with a PAdES signature any PDF reader shows),
            report/report.html, report/manifest.json (the officer-signed manifest; its SHA-256 is sealed by
            the device in a "report" record). This is version {version} of the report of case {case}{supersedes}.
Check it:   evidence-agent verify {name} --ca CUSTOMS_CA.pem --officer-ca OFFICER_CA.pem
  OFFICER_CA.pem is the CA certificate that issued the officer's certificate ({issuer}); customs hands it
  over with the report, together with CUSTOMS_CA.pem. Without --officer-ca verify exits 3: the report is
  intact, but nothing vouches for the officer.
"""


def verify_bundle(path: Path, officer: OfficerKey | None = None) -> Report:
    """The checks of ``evidence-agent verify`` that the foundation offers: records, chain, anchors, report
    (the officer's own CA stands in for the verifier's --officer-ca)."""
    officer_cas = list(officer.chain) if officer is not None else []
    return check(path, checkers=[anchor_checker(), still_checker(), report_checker(officer_cas)])


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


def _same_site(site: str, by_device: dict[str, list[ev.Item]]) -> None:
    """Every record of the case's devices names the case's site: a device of another site is refused."""
    for device, items in by_device.items():
        other = next((it for it in items if it.record.get("site_id") != site), None)
        if other is not None:
            raise ConfigError(f"device {device}: seq {other.seq} was sealed at site "
                              f"{str(other.record.get('site_id'))[:70]!r}, not the case's site {site!r} "
                              "(a case names devices of one site)")


def _run_of(span: tuple[int | None, int | None], items: list[ev.Item]) -> dict[str, Any]:
    first, last = int(span[0] or 0), int(span[1] or 0)
    return {"range": {"first_seq": first, "last_seq": last, "count": last - first + 1},
            "items": [{"seq": it.seq, "kind": it.kind, "record_hash": it.record_hash,
                       "media_sha256": (it.record.get("media") or {}).get("sha256")} for it in items]}


def _write(dirs: dict[str, Path], by_device: dict[str, list[ev.Item]], out: Path, extra: dict[str, bytes],
           site: str, readme_extra: str = "") -> None:
    """The export-format bundle of one device, or the ``devices/<id>/`` bundle of several."""
    if len(by_device) == 1:
        (device, items), = by_device.items()
        write_bundle(dirs[device], items, out, extra, readme_extra)
    else:
        write_devices_bundle({d: (dirs[d], items) for d, items in by_device.items()}, out, extra, site, readme_extra)


def build_report(service: InspectionService, evidence_root: Path, out_dir: Path, officer: OfficerKey, *,
                 seal: bool = True, wait_s: float = 30.0, tsa_url: str | None = None,
                 reason: str | None = None, lang: str = DEFAULT_REPORT_LANG) -> ReportResult:
    """The whole end of an inspection: report files, the PDF signed by the officer (PAdES; time-stamped by
    ``tsa_url`` when given), signed manifest, device seal, verified bundle. A case that has a report gets a
    new version, which needs ``reason``. ``lang``: ``zh-en`` (Chinese with English), ``zh`` or ``en``."""
    insp = service.inspection
    spans = {d: insp.run_of(d) for d in insp.devices}
    if insp.state not in ("ended", "reported") or any(a is None or b is None for a, b in spans.values()):
        raise ConfigError(f"inspection {insp.case} is {insp.state}: end it (on every device) before building "
                          "the report")
    version = next_version(insp, reason)
    dirs = {d: ev.device_dir_of(evidence_root, d) for d in insp.devices}
    several = len(insp.devices) > 1
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    by_device = {d: wait_for_items(dirs[d], int(a or 0), int(b or 0), wait_s) for d, (a, b) in spans.items()}
    _same_site(insp.site, by_device)
    items = ev.merged(by_device)
    timings["collect_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    pre = out_dir / ".pre-bundle.zip"
    _write(dirs, by_device, pre, {}, insp.site)
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
    body: dict[str, Any] = {"typ": REPORT_TYP_DEVICES if several else REPORT_TYP, "case": insp.case,
            "device_id": insp.device, "site_id": insp.site,
            "enterprise": insp.enterprise, "officer": officer.officer_id, "created": now_iso(),
            "version": version.number, "supersedes": version.supersedes, "reason": version.reason,
            "started": insp.started_at, "ended": insp.ended_at, "outcome": insp.outcome,
            "files": {"report.pdf": file_entry(pdf), "report.html": file_entry(html)},
            "verification": {"ok": verification["ok"], "problems": len(verification["problems"])}}
    runs = [{"device_id": d, **_run_of(spans[d], by_device[d])} for d in insp.devices]
    if several:
        body["devices"] = runs
    else:
        body.update(range=runs[0]["range"], items=runs[0]["items"])
    manifest = sign_report(body, officer.private_key, officer.cert, officer.chain)
    sha = hashlib.sha256(manifest).hexdigest()
    safe = f'{insp.case.replace("/", "_")}-v{version.number}'
    for name, data in (("report.pdf", pdf), ("report.html", html), (MANIFEST, manifest)):
        atomic_write(out_dir / f"{safe}-{name}", data)
    sealed_seq: int | None = None
    first, last = int(spans[insp.device][0] or 0), int(spans[insp.device][1] or 0)
    if seal:  # the primary device seals the report; the other chains end at their inspection_end
        sealed_seq = int(service.seal_report(sha, len(manifest), len(items))["seq"])
        last = max(last, sealed_seq)
    t = time.perf_counter()
    final = {**by_device, insp.device: wait_for_items(dirs[insp.device], first, last, wait_s)}
    timings["wait_seal_s"] = time.perf_counter() - t
    t = time.perf_counter()
    bundle = out_dir / f"{safe}-bundle.zip"
    _write(dirs, final, bundle, {f"{REPORT_DIR}/report.pdf": pdf, f"{REPORT_DIR}/report.html": html,
                                 f"{REPORT_DIR}/{MANIFEST}": manifest}, insp.site,
                 REPORT_README.format(officer=officer.officer_id, version=version.number, case=insp.case,
                                      name=bundle.name, issuer=issuer or "no issuing CA: not verifiable",
                                      supersedes=(f"; it supersedes version {version.number - 1} (manifest "
                                                  f"SHA-256 {version.supersedes}) because: {version.reason}")
                                      if version.supersedes else ""))
    checked = verify_bundle(bundle, officer).to_json()
    timings["bundle_and_verify_s"] = time.perf_counter() - t
    insp.state = "reported"
    prev = dict(insp.report or {})
    history = [*(prev.pop("history", None) or []), prev] if prev else []
    insp.report = {"at": now_iso(), "bundle": str(bundle), "manifest_sha256": sha, "sealed_seq": sealed_seq,
                   "items": len(items), "verified": checked["ok"], "version": version.number,
                   "supersedes": version.supersedes, "reason": version.reason, "history": history}
    note = f"report v{version.number} signed; manifest SHA-256 {sha}"
    if version.supersedes:
        note += f"; supersedes v{version.number - 1} ({version.supersedes[:16]}…): {version.reason}"
    service._add(Entry(at=now_iso(), kind="report", seq=sealed_seq, officer=officer.officer_id, ok=checked["ok"],
                       note=note, details={"bundle": str(bundle), "version": version.number,
                                           "supersedes": version.supersedes, "reason": version.reason}))
    return ReportResult(bundle, out_dir / f"{safe}-report.pdf", out_dir / f"{safe}-report.html", sha, len(items),
                        sealed_seq, checked, timings, findings, version.number, version.supersedes)

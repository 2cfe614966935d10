"""The report's HTML: one self-contained page (inline SVG map, data-URI thumbnails, print CSS) that
WeasyPrint turns into the PDF.

Rendered by Jinja2 templates (``templates/``) with autoescaping: every value from records, replies or the
session reaches the page as text, never as markup. Words come from the customs catalogue
(``agent/customs/i18n``) through Jinja2's i18n extension: ``zh``, ``en`` or ``zh-en`` (Chinese with the English
beside or below it). Thumbnails are decoded here within limits (file size, pixels before decoding,
Pillow's decompression-bomb guard); a still that cannot be decoded becomes a named finding ("still seq N
could not be rendered"), never a failed report. ``Rendered.resources`` lists the only URLs the page may load
(its own data: URIs) for the PDF's URL fetcher.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from agent.core.vocab import DECISION_LABELS, ENTRY_LABELS, EVENT_LABELS, OUTCOME_LABELS, label_of
from agent.customs.i18n import N_
from agent.customs.i18n import catalog as i18n
from agent.customs.inspection import evidence as ev
from agent.customs.inspection.audio import audio_items
from agent.customs.inspection.geo import MAP_LEGEND, site_map_svg
from agent.customs.inspection.model import CHECKIN_STEPS, STEP_TITLES, Inspection
from agent.customs.inspection.zoom import zoom_items
from agent.signing.sources import read_regular

MAX_STILL_BYTES = 32 << 20  # a still file larger than this is not decoded
MAX_DECODE_PIXELS = 24_000_000  # pixels decoded for one thumbnail (after JPEG's own downscaling)
MAX_SIDE = 20_000
DOCUMENT_SIDE = 1600  # long side, in pixels, of a check-in still printed at full text width (a readable document)
TEXT_ASPECT = 230 / 182  # height / width of the space a document still may fill on an A4 page (mm)
FULL_SIDE = 6000  # long side of a full-resolution still in the PDF: a 4608x2592 sensor keeps every pixel
FULL_ASPECT = 125 / 269  # height / width of the space a full-resolution still fills on an A4 landscape page (mm)


#: Where a location check puts the fix, in words.
SIDES = {"inside": N_("inside the site polygon"), "outside": N_("outside the site polygon"),
         "unknown": N_("side of the site polygon unknown")}
#: A fix's quality (``geo.LocationCheck.quality``) in words.
QUALITIES = {q: q for q in (N_("good"), N_("fair"), N_("poor"), N_("no fix"))}


@cache
def _env(lang: str) -> Environment:
    """The templates' environment for ``lang`` (autoescaped; ``_`` is the catalogue's gettext)."""
    env = Environment(loader=PackageLoader("agent.customs.inspection", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default=True), extensions=["jinja2.ext.i18n"])
    gettext = i18n.markup_gettext(lang)
    env.install_gettext_callables(gettext, lambda s, p, n: gettext(s if n == 1 else p), newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(mono=lambda text: Markup('<span class="mono">{}</span>').format(text),
                       em=lambda text: Markup("<i>{}</i>").format(text))
    return env


@cache
def _css() -> Markup:
    """The print stylesheet: our own file, so it is markup (autoescaping would break its quotes)."""
    text = (Path(__file__).with_name("templates") / "report.css").read_text()
    return Markup(text.replace("</", ""))


@dataclass(frozen=True)
class Still:
    seq: int | None
    uri: str | None = None
    problem: str | None = None
    missing: bool = False
    tall: bool = False  # taller than the page's text area allows at full width: sized by height instead
    size: tuple[int, int] | None = None  # pixels of the embedded picture


@dataclass
class Rendered:
    html: str
    resources: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # data: URI -> (bytes, MIME type)
    findings: list[str] = field(default_factory=list)  # stills that could not be rendered
    still_problems: list[tuple[int, str]] = field(default_factory=list)  # the same, as (seq, why)


def thumbnail(path: Path | None, width: int = 320, quality: int = 70) -> tuple[bytes | None, str | None]:
    """(JPEG bytes, None) of a still's thumbnail, or (None, why it could not be rendered)."""
    if path is None:
        return None, None
    from PIL import Image, UnidentifiedImageError

    try:
        size, data = read_regular(path, MAX_STILL_BYTES)
    except OSError as exc:
        return None, f"unreadable or a symbolic link: {exc.strerror or exc}"
    if data is None:
        return None, f"file of {size} bytes is over the {MAX_STILL_BYTES}-byte limit"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w > MAX_SIDE or h > MAX_SIDE:
                    return None, f"{w}x{h} pixels is over the {MAX_SIDE}-pixel side limit"
                if img.format == "JPEG":
                    img.draft("RGB", (width, width))  # decode at 1/2..1/8 scale: what a thumbnail needs
                if img.size[0] * img.size[1] > MAX_DECODE_PIXELS:
                    return None, f"{w}x{h} pixels is over the {MAX_DECODE_PIXELS}-pixel decoding limit"
                img.thumbnail((width, width))
                buf = io.BytesIO()
                img.convert("RGB").save(buf, "JPEG", quality=quality)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return None, f"decompression bomb refused ({exc})"[:300]
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, MemoryError) as exc:
        return None, f"not a decodable image ({type(exc).__name__}: {str(exc)[:120]})"
    return buf.getvalue(), None


class _Stills:
    """Thumbnails made once per (seq, width), registered as the page's only loadable resources."""

    def __init__(self, by_key: dict[tuple[str, int], ev.Item], out: Rendered) -> None:
        self.by_key, self.out = by_key, out
        self.done: dict[tuple[str, int, int], Still] = {}

    def get(self, device: str, seq: int | None, width: int) -> Still:
        it = self.by_key.get((device, seq)) if seq is not None else None
        if it is None:
            return Still(seq, missing=True)
        key = (device, it.seq, width)
        if key not in self.done:
            jpeg, problem = thumbnail(it.media, width, 85 if width >= DOCUMENT_SIDE else 70)
            if jpeg is not None:
                uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
                self.out.resources[uri] = (jpeg, "image/jpeg")
                size = _size(jpeg)
                aspect = FULL_ASPECT if width >= FULL_SIDE else TEXT_ASPECT
                self.done[key] = Still(it.seq, uri=uri, tall=size[1] > size[0] * aspect, size=size)
            elif problem is not None:
                finding = f"still seq {it.seq} could not be rendered: {problem}"
                if finding not in self.out.findings:
                    self.out.findings.append(finding)
                    self.out.still_problems.append((it.seq, problem))
                self.done[key] = Still(it.seq, problem=problem)
            else:
                self.done[key] = Still(it.seq, missing=True)
        return self.done[key]


def _size(jpeg: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as img:  # our own JPEG, already within the limits
        return img.size


def full_resolution(it: ev.Item) -> str | None:
    """``"4608 × 2592"`` for a still sealed at full resolution (its record's pixel size), else None."""
    w, h = it.extra.get("width"), it.extra.get("height")
    if it.kind != "still" or it.extra.get("resolution") != "full":
        return None
    whole = all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 100_000 for n in (w, h))
    return f"{w} × {h}" if whole else "?"


def _full_stills(insp: Inspection, items: list[ev.Item], stills: _Stills) -> list[dict[str, Any]]:
    """Every full-resolution still of the case, each for a page of its own, with the step or snapshot it was."""
    entries = {(e.device or insp.device, e.seq): e for e in insp.entries if e.kind in ("checkin", "snapshot")}
    out = []
    for it in items:
        size = full_resolution(it)
        if size is None:
            continue
        e = entries.get((it.device, it.seq))
        label = it.extra.get("label")
        out.append({"device": it.device, "seq": it.seq, "at": it.wall, "record_hash": it.record_hash, "size": size,
                    "title": label if isinstance(label, str) else None, "title_known": label in STEP_TITLES,
                    "step": STEP_TITLES.get(str(label)), "note": e.note if e is not None else None,
                    "still": stills.get(it.device, it.seq, FULL_SIDE)})
    return out


def collapse_warnings(warnings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Identical warnings as one line each: the text, how many, and the seq range they span (in first-seen
    order). Items that are not ``seq N`` are listed (the first three)."""
    groups: dict[str, dict[str, Any]] = {}
    for w in warnings:
        what, item = str(w.get("warning")), str(w.get("item"))
        g = groups.setdefault(what, {"warning": what, "count": 0, "seqs": [], "others": []})
        g["count"] += 1
        num = item.removeprefix("seq ")
        if item.startswith("seq ") and num.isdigit():
            g["seqs"].append(int(num))
        elif len(g["others"]) < 3:
            g["others"].append(item)
    out = []
    for g in groups.values():
        seqs = sorted(set(g.pop("seqs")))
        where = []
        if seqs:
            span = seqs[-1] - seqs[0] + 1
            rng = f"seq {seqs[0]}" if len(seqs) == 1 else f"seq {seqs[0]}..{seqs[-1]}"
            where.append(rng if span == len(seqs) or len(seqs) == 1 else f"{rng} ({len(seqs)} of {span})")
        where.extend(g.pop("others"))
        out.append({**g, "where": "; ".join(where)})
    return out


def _quality(items: list[ev.Item]) -> list[tuple[str, str]]:
    fixes = [it.record.get("gps") or {} for it in items]
    with_fix = [g for g in fixes if isinstance(g, dict) and g.get("fix") not in (None, "none")]
    hdops = [float(g["hdop"]) for g in with_fix if isinstance(g.get("hdop"), int | float)]
    sources = Counter(str((it.record.get("time") or {}).get("source")) for it in items)
    offsets = [abs(float(o)) for it in items if isinstance(o := (it.record.get("time") or {}).get("gps_offset_s"),
                                                            int | float)]
    return [(N_("GPS fix in records"), f"{len(with_fix)} / {len(items)}"),
            ("HDOP", f"{min(hdops):.1f} – {max(hdops):.1f}" if hdops else "—"),
            (N_("time sources"), ", ".join(f"{k}: {n}" for k, n in sorted(sources.items())) or "—"),
            (N_("largest |GPS − system clock|"), f"{max(offsets):.3f} s" if offsets else "—")]


def _location(e: Any) -> dict[str, Any]:
    lv = e.details.get("location") or {}
    lv = lv if isinstance(lv, dict) else {}
    side = "inside" if lv.get("inside") is True else ("outside" if lv.get("inside") is False else "unknown")
    dist = lv.get("distance_m")
    reasons = lv.get("reasons")
    quality = lv.get("quality")
    return {"side": SIDES[side], "distance": abs(float(dist)) if isinstance(dist, int | float) else None,
            "quality": quality, "quality_known": quality in QUALITIES,
            "reasons": "; ".join(map(str, reasons)) if isinstance(reasons, list) and reasons else None}


def _annex_words(lang: str) -> tuple[str, str]:
    """The annex's two words on each of its ~500 lines, in one language (Chinese in a bilingual report: the
    annex's bilingual heading names both hashes); two languages per line made the PDF 2.6x slower to lay out."""
    words = i18n.translations("en" if lang == "en" else "zh").gettext
    return words(N_("record")), words(N_("media"))


def _gps(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _devices(insp: Inspection, verification: dict[str, Any]) -> list[dict[str, Any]]:
    """Each device's chain as the verifier found it: its signed run, item count and result."""
    found = verification.get("devices") or {}
    out = []
    for d in insp.devices:
        got = found.get(d) or {}
        first, last = insp.run_of(d)
        out.append({"device": d, "first": first, "last": last, "items": got.get("items"),
                    "first_seq": got.get("first_seq"), "last_seq": got.get("last_seq"),
                    "ok": bool(got.get("ok")) and bool(got), "problems": got.get("problems")})
    return out


def render(insp: Inspection, items: list[ev.Item], verification: dict[str, Any], *, officer: str,
           officer_key_id: str, officer_issuer: str | None = None, version: Any = None,
           lang: str = i18n.DEFAULT_REPORT_LANG) -> Rendered:
    """The whole report page in ``lang`` (``zh-en``, ``zh`` or ``en``), and the resources (thumbnails) it
    embeds."""
    if lang not in i18n.REPORT_LANGS:
        raise ValueError(f"report language {lang!r} is not one of {', '.join(i18n.REPORT_LANGS)}")
    plain = i18n.gettext(lang)
    out = Rendered("")
    by_key = {(it.device, it.seq): it for it in items}
    by_device = {d: sorted((it for it in items if it.device == d), key=lambda it: it.seq) for d in insp.devices}
    stills = _Stills(by_key, out)
    alerts = ev.alerts_of(by_device)
    several = len(insp.devices) > 1
    timer = insp.timer()
    loc = insp.checkin.get("location")
    checks = []
    fixes = [e for e in insp.entries if e.kind == "checkin" and e.label == "location"]
    for n, e in enumerate(fixes, 1):
        g = _gps(e.details.get("gps"))
        if isinstance(g.get("lat"), int | float) and isinstance(g.get("lon"), int | float):
            first = loc is not None and e.seq == loc.seq
            what = plain(N_("check-in") if first else N_("re-check"))
            checks.append(((float(g["lat"]), float(g["lon"])), f"{what} {n} (seq {e.seq})"))
    track = ev.track(by_device.get(insp.device, items))  # the primary's path (the others stand near it)
    full_keys = {(it.device, it.seq) for it in items if full_resolution(it) is not None}  # printed on their own
    checkin = []
    for step in CHECKIN_STEPS:
        done = insp.checkin.get(step)
        checkin.append({"title": STEP_TITLES[step], "entry": done,
                        "gps": _gps(done.details.get("gps")) if done else {},
                        "location": _location(done) if done is not None and step == "location" else None,
                        "still": stills.get(done.device or insp.device, done.seq, 320) if done is not None else None,
                        "document": stills.get(done.device or insp.device, done.seq, DOCUMENT_SIDE)
                        if done is not None and (done.device or insp.device, done.seq) not in full_keys else None})
    rows: list[dict[str, Any]] = []
    for e in insp.entries:
        words = {"decision": DECISION_LABELS, "end": OUTCOME_LABELS, "checkin": STEP_TITLES,
                 "snapshot": STEP_TITLES}.get(e.kind, {})
        label = label_of(words, e.label)
        device = e.device or insp.device
        rows.append({"at": e.at, "device": device, "kind": e.kind, "kind_label": ENTRY_LABELS.get(e.kind),
                     "label": label,
                     "label_known": e.label in words, "note": e.note, "ok": e.ok,
                     "show_ok": e.kind in ("readiness", "notice") or e.ok is False, "seq": e.seq,
                     "record_hash": e.record_hash,
                     "still": stills.get(device, e.seq, 240)
                     if e.kind in ("checkin", "snapshot") and (device, e.seq) in by_key else None,
                     "full": full_resolution(by_key[(device, e.seq)])
                     if e.seq is not None and (device, e.seq) in by_key else None})
    advice = set(ev.ADVICE.values())
    for a in alerts:
        a["label"], a["advice_known"] = EVENT_LABELS.get(str(a["type"])), a.get("advice") in advice
        rows.append({"at": a["at"], "device": a["device"], "alert": a, "seq": a["seq"],
                     "record_hash": a["record_hash"]})
    for it in items:
        if it.kind == "live":
            rows.append({"at": it.wall, "device": it.device, "live": it.extra, "seq": it.seq,
                         "record_hash": it.record_hash})
    rows.extend({"at": a["at"], "device": d, "audio": a, "seq": a["seq"], "record_hash": a["record_hash"]}
                for d, its in by_device.items() for a in audio_items(its))
    rows.extend({"at": z["at"], "device": z["device"], "zoom": z, "seq": z["seq"], "record_hash": z["record_hash"]}
                for z in zoom_items(items))
    rows.sort(key=lambda r: str(r["at"]))
    for r in rows:
        for k in ("alert", "live", "audio", "zoom", "still", "kind", "kind_label", "label", "label_known", "note", "ok",
                  "show_ok", "full"):
            r.setdefault(k, None)
    anchoring = verification.get("anchoring") or {}
    rd = insp.readiness
    readiness = None if rd is None else {
        "passed": bool(rd.get("passed")), "at": rd.get("at"),
        "checks": [{"name": c.get("name"), "status": c.get("status"), "detail": c.get("detail")}
                   for c in rd.get("checks") or [] if isinstance(c, dict)]}
    parties = [(N_("case number"), insp.case), (N_("enterprise"), insp.enterprise),
               (N_("representative"), insp.representative), (N_("registered site"), insp.registered_site),
               (N_("device / site id"), f"{', '.join(insp.devices)} / {insp.site}"),
               (N_("officers"), ", ".join(insp.officers)),
               (N_("started / ended (UTC)"), f"{insp.started_at or '—'} / {insp.ended_at or '—'}"),
               (N_("sealed range"), "; ".join(
                   f"{d + ': ' if several else ''}seq {insp.run_of(d)[0]} (inspection_start) .. {insp.run_of(d)[1]} "
                   "(inspection_end)" for d in insp.devices))]
    annex = [{"device": it.device, "seq": it.seq, "kind": it.kind,
              "label": it.extra.get("label") or it.extra.get("type"),
              "wall": it.wall, "record_hash": it.record_hash,
              "media_sha256": (it.record.get("media") or {}).get("sha256")} for it in items]
    site_map = Markup(site_map_svg(insp.polygon, track, checks, legend=None)) \
        if track or insp.polygon else None
    decisions = [{"label": label_of(DECISION_LABELS, e.label), "known": e.label in DECISION_LABELS, "at": e.at,
                  "seq": e.seq, "note": e.note} for e in insp.entries if e.kind == "decision"]
    run_count = (insp.end_seq - insp.start_seq + 1) if insp.start_seq is not None and insp.end_seq is not None \
        else None
    footer = plain(N_("Remote inspection report"))
    out.html = _env(lang).get_template("report.html.j2").render(
        css=_css(), lang=lang, html_lang="en" if lang == "en" else "zh-Hans",
        doc_title=f"{footer} {insp.case}", footer=footer, outcome=label_of(OUTCOME_LABELS, insp.outcome),
        outcome_known=insp.outcome in OUTCOME_LABELS, insp=insp, officer=officer, officer_key_id=officer_key_id,
        officer_issuer=officer_issuer,
        parties=parties, minutes=(timer["elapsed_s"] or 0) / 60, over=bool(timer["over"]), readiness=readiness,
        checkin=checkin, full_stills=_full_stills(insp, items, stills), site_map=site_map,
        day=(insp.started_at or insp.created)[:10], timeline=rows,
        alerts=alerts, decisions=decisions, quality=_quality(items), several=several,
        devices=_devices(insp, verification) if several else [],
        verification={"ok": bool(verification.get("ok")), "item_count": verification.get("items"),
                      "first_seq": verification.get("first_seq"), "last_seq": verification.get("last_seq"),
                      "key_id": str(verification.get("key_id") or ""),
                      "problems": list(verification.get("problems") or []),
                      "warnings": list(verification.get("warnings") or [])},
        warnings=collapse_warnings(list(verification.get("warnings") or [])),
        render_findings=[{"seq": seq, "problem": why} for seq, why in out.still_problems],
        anchors={"checkpoints": len(anchoring.get("checkpoints") or []),
                 "anchors": len(anchoring.get("anchors") or [])},
        receipts=verification.get("receipts") or [], run_count=run_count, annex=annex,
        document_side=DOCUMENT_SIDE, full_side=FULL_SIDE, version=version, map_legend=MAP_LEGEND,
        annex_words=_annex_words(lang))
    return out

"""The report's HTML: one self-contained page (inline SVG map, data-URI thumbnails, print CSS) that
WeasyPrint turns into the PDF. Everything taken from records or the session is escaped."""

from __future__ import annotations

import base64
import io
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from agent.customs.inspection import evidence as ev
from agent.customs.inspection.geo import site_map_svg
from agent.customs.inspection.model import CHECKIN_STEPS, STEP_TITLES, Inspection

CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm;
  @bottom-left { content: "Case " string(case) " — remote inspection report"; font-size: 8pt; color: #555; }
  @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt; color: #555; } }
body { font-family: "DejaVu Sans", sans-serif; font-size: 9.5pt; color: #111; }
h1 { font-size: 17pt; margin: 0 0 2mm 0; string-set: case attr(data-case); }
h2 { font-size: 12pt; border-bottom: 1px solid #999; margin: 6mm 0 2mm 0; page-break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm 0; }
th, td { border: 1px solid #bbb; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #eee; }
td.k { width: 32%; background: #f6f6f6; }
.ok { color: #1b5e20; font-weight: bold; } .bad { color: #b71c1c; font-weight: bold; } .warn { color: #e65100; }
.mono { font-family: "DejaVu Sans Mono", monospace; font-size: 7pt; word-break: break-all; }
img.thumb { width: 36mm; border: 1px solid #999; }
table.timeline { table-layout: fixed; }
.timeline th:nth-child(1) { width: 14%; } .timeline th:nth-child(2) { width: 44%; }
.timeline th:nth-child(3) { width: 22%; } .timeline th:nth-child(4) { width: 20%; }
thead { display: table-header-group; }
.ax { font-size: 7pt; border-bottom: 0.5pt solid #ddd; padding: 0.4mm 0; page-break-inside: avoid; }
.ax .mono { font-size: 5.5pt; word-break: normal; }
tr { page-break-inside: avoid; }
.small { font-size: 8pt; color: #444; }
"""


def thumbnail(path: Path | None, width: int = 320) -> str | None:
    """A JPEG data URI of a still, or None when the media has not arrived or is not an image."""
    if path is None:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.thumbnail((width, width))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=70)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _v(value: Any) -> str:
    return "—" if value is None or value == "" else escape(str(value))


def _ok(flag: bool | None, yes: str = "passed", no: str = "FAILED") -> str:
    if flag is None:
        return '<span class="warn">not done</span>'
    return f'<span class="ok">{yes}</span>' if flag else f'<span class="bad">{no}</span>'


def _gps_text(gps: dict[str, Any] | None) -> str:
    if not gps or gps.get("fix") in (None, "none"):
        return f"no fix ({_v((gps or {}).get('status'))})"
    return (f"{gps.get('lat')}, {gps.get('lon')} — {gps.get('fix')}, HDOP {_v(gps.get('hdop'))}, "
            f"{_v(gps.get('satellites'))} sats, age {_v(gps.get('age_s'))} s, {_v(gps.get('talker'))}")


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(f'<tr><td class="k">{escape(k)}</td><td>{v}</td></tr>' for k, v in pairs)


def _quality(items: list[ev.Item]) -> list[tuple[str, str]]:
    fixes = [it.record.get("gps") or {} for it in items]
    with_fix = [g for g in fixes if g.get("fix") not in (None, "none")]
    hdops = [float(g["hdop"]) for g in with_fix if isinstance(g.get("hdop"), int | float)]
    sources = Counter(str((it.record.get("time") or {}).get("source")) for it in items)
    offsets = [abs(float(o)) for it in items if isinstance(o := (it.record.get("time") or {}).get("gps_offset_s"),
                                                            int | float)]
    return [("GPS fix in records", f"{len(with_fix)} of {len(items)}"),
            ("HDOP", f"{min(hdops):.1f} – {max(hdops):.1f}" if hdops else "—"),
            ("time sources", ", ".join(f"{k}: {n}" for k, n in sorted(sources.items())) or "—"),
            ("largest |GPS − system clock|", f"{max(offsets):.3f} s" if offsets else "—")]


def render(insp: Inspection, items: list[ev.Item], verification: dict[str, Any], *, officer: str,
           officer_key_id: str) -> str:
    """The whole report page."""
    by_seq = {it.seq: it for it in items}
    alerts = ev.alerts(items)
    track = ev.track(items)
    timer = insp.timer()
    loc = insp.checkin.get("location")
    checks = []
    fixes = [e for e in insp.entries if e.kind == "checkin" and e.label == "location"]
    for n, e in enumerate(fixes, 1):
        gps = e.details.get("gps") or {}
        if isinstance(gps.get("lat"), int | float) and isinstance(gps.get("lon"), int | float):
            first = loc is not None and e.seq == loc.seq
            checks.append(((float(gps["lat"]), float(gps["lon"])), f"{'check-in' if first else 're-check'} "
                                                                   f"{n} (seq {e.seq})"))
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Inspection report {_v(insp.case)}</title>"
           f"<style>{CSS}</style></head><body>",
           f'<h1 data-case="{_v(insp.case)}">Remote inspection report — case {_v(insp.case)}</h1>',
           f'<p class="small">Prepared by {_v(officer)} (signing key {escape(officer_key_id[:16])}…). Every item '
           f"below is identified by its sequence number and record hash in device {_v(insp.device)}'s signed "
           f"evidence chain; the bundle this report travels in lets anyone check them.</p>",
           "<h2>Case and parties</h2><table>", _rows([
               ("case number", _v(insp.case)), ("enterprise", _v(insp.enterprise)),
               ("representative", _v(insp.representative)), ("registered site", _v(insp.registered_site)),
               ("device / site id", f"{_v(insp.device)} / {_v(insp.site)}"),
               ("officers", _v(", ".join(insp.officers))),
               ("planned duration", f"{insp.planned_minutes} min"),
               ("started / ended (UTC)", f"{_v(insp.started_at)} / {_v(insp.ended_at)}"),
               ("actual duration", f"{(timer['elapsed_s'] or 0) / 60:.1f} min"
                + (' <span class="warn">(over plan)</span>' if timer["over"] else "")),
               ("outcome", _v(insp.outcome)),
               ("sealed range",
                f"seq {_v(insp.start_seq)} (inspection_start) .. {_v(insp.end_seq)} (inspection_end)")]),
           "</table>"]
    rd = insp.readiness
    out.append("<h2>Readiness (device self-test before the start)</h2>")
    if rd is None:
        out.append('<p class="warn">No self-test was requested before the start.</p>')
    else:
        out.append(f"<p>{_ok(bool(rd.get('passed')))} at {_v(rd.get('at'))}</p><table><tr><th>check</th>"
                   "<th>result</th><th>detail</th></tr>")
        out += [f"<tr><td>{_v(c.get('name'))}</td><td>{_v(c.get('status'))}</td><td>{_v(c.get('detail'))}</td></tr>"
                for c in rd.get("checks") or [] if isinstance(c, dict)]
        out.append("</table>")
    out.append("<h2>Check-in</h2><table><tr><th>step</th><th>result</th><th>evidence</th><th>still</th></tr>")
    for step in CHECKIN_STEPS:
        done = insp.checkin.get(step)
        if done is None:
            out.append(f"<tr><td>{escape(STEP_TITLES[step])}</td><td>{_ok(None)}</td><td></td><td></td></tr>")
            continue
        e = done
        desc = f"seq {_v(e.seq)} at {_v(e.at)}<br><span class='mono'>{_v(e.record_hash)}</span>"
        if e.note:
            desc += f"<br>note: {_v(e.note)}"
        if step == "location":
            lv = e.details.get("location") or {}
            side = "inside" if lv.get("inside") else ("outside" if lv.get("inside") is False else "unknown")
            dist = lv.get("distance_m")
            desc += (f"<br>{_gps_text(e.details.get('gps'))}<br>{side} the site polygon"
                     + (f", {abs(float(dist)):.1f} m from the boundary" if isinstance(dist, int | float) else "")
                     + f"; fix quality {_v(lv.get('quality'))}"
                     + (f" ({_v('; '.join(lv.get('reasons') or []))})" if lv.get("reasons") else ""))
        thumb = thumbnail(by_seq[e.seq].media) if e.seq in by_seq else None
        img = f'<img class="thumb" src="{thumb}">' if thumb else '<span class="small">media not received</span>'
        out.append(f"<tr><td>{escape(STEP_TITLES[step])}</td><td>{_ok(e.ok, 'confirmed', 'NOT confirmed')}</td>"
                   f"<td>{desc}</td><td>{img}</td></tr>")
    out.append("</table>")
    if track or insp.polygon:
        out.append("<h2>Site map</h2>" + site_map_svg(insp.polygon, track, checks))
    day = (insp.started_at or insp.created)[:10]
    out.append(f'<h2>Timeline</h2><table class="timeline"><thead><tr><th>{escape(day)} UTC</th><th>what</th>'
               "<th>seq / record hash</th><th>still</th></tr></thead>")
    rows: list[tuple[str, str, str, str]] = []
    for e in insp.entries:
        what = (f"<b>{escape(e.kind)}</b>" + (f" {_v(e.label)}" if e.label else "")
                + (f": {_v(e.note)}" if e.note else ""))
        if e.kind == "readiness" or e.ok is False:
            what += f" — {_ok(e.ok, 'ok', 'failed')}"
        thumb = thumbnail(by_seq[e.seq].media, 240) if e.kind in ("checkin", "snapshot") and e.seq in by_seq else None
        rows.append((e.at, what, f"{_v(e.seq)}<br><span class='mono'>{_v(e.record_hash)}</span>",
                     f'<img class="thumb" src="{thumb}">' if thumb else ""))
    for a in alerts:
        rows.append((a["at"], f'<span class="bad">ALERT {escape(a["type"])}</span>: {escape(a["advice"])}',
                     f"{a['seq']}<br><span class='mono'>{a['record_hash']}</span>", ""))
    for it in items:
        if it.kind == "live":
            rows.append((it.wall, f"live session watched: {_v(it.extra.get('session'))} by "
                                  f"{_v(it.extra.get('officer'))}", f"{it.seq}<br><span class='mono'>"
                                  f"{it.record_hash}</span>", ""))
    out += [f"<tr><td>{_v(t[11:23])}</td><td>{w}</td><td>{s}</td><td>{i}</td></tr>" for t, w, s, i in sorted(rows)]
    out.append("</table><h2>Alerts and decisions</h2>")
    decisions = [e for e in insp.entries if e.kind == "decision"]
    out.append(f"<p>{len(alerts)} alert(s); {len(decisions)} decision(s). "
               + "; ".join(f"<b>{_v(d.label)}</b> at {_v(d.at)} (seq {_v(d.seq)}): {_v(d.note)}" for d in decisions)
               + "</p>")
    out.append("<h2>GPS and time quality</h2><table>" + _rows(_quality(items)) + "</table>")
    out.append(_verification_html(verification))
    out.append(_how_to_verify(insp))
    # Blocks, not a table: WeasyPrint lays out ~500 table rows about four times slower than the same lines.
    out.append('<h2>Annex: every item in the inspection</h2><p class="small">seq, kind, capture time (UTC); '
               "then the record's SHA-256 and the media's SHA-256.</p>")
    out += [f'<div class="ax"><b>{it.seq}</b> {escape(it.kind)}{_label(it)} · {_v(it.wall)}<br>'
            f'<span class="mono">record {it.record_hash} media '
            f"{_v((it.record.get('media') or {}).get('sha256'))}</span></div>" for it in items]
    out.append("</body></html>")
    return "".join(out)


def _label(it: ev.Item) -> str:
    label = it.extra.get("label") or it.extra.get("type")
    return f" ({escape(str(label))})" if label else ""


def _verification_html(v: dict[str, Any]) -> str:
    anchors = v.get("anchoring") or {}
    receipts = v.get("receipts") or []
    parts = [f"<h2>Verification status</h2><p>{_ok(bool(v.get('ok')), 'VERIFIED', 'PROBLEMS FOUND')}: "
             f"{_v(v.get('items'))} items, seq {_v(v.get('first_seq'))}..{_v(v.get('last_seq'))}, signed by device "
             f"key {_v(str(v.get('key_id'))[:16])}…; {len(v.get('problems') or [])} problem(s), "
             f"{len(v.get('warnings') or [])} warning(s).</p>"]
    for p in (v.get("problems") or [])[:50]:
        parts.append(f'<p class="bad">{_v(p.get("item"))}: {_v(p.get("problem"))}</p>')
    grouped: dict[str, list[str]] = {}
    for w in v.get("warnings") or []:
        grouped.setdefault(str(w.get("warning")), []).append(str(w.get("item")))
    for what, where in grouped.items():
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        parts.append(f'<p class="warn">warning ({len(where)}×): {_v(what)} — {_v(shown)}</p>')
    parts.append(f"<p>Anchoring: {len(anchors.get('checkpoints') or [])} checkpoint(s), "
                 f"{len(anchors.get('anchors') or [])} anchor receipt(s) in the evidence; "
                 f"{len(receipts)} checkpoint/receipt record(s) sealed during the inspection.</p>")
    if receipts:
        parts.append("<table><tr><th>seq</th><th>kind</th><th>sealed</th><th>record hash</th></tr>")
        parts += [f"<tr><td>{r['seq']}</td><td>{escape(r['kind'])}</td><td>{_v(r['at'])}</td>"
                  f"<td class='mono'>{r['record_hash']}</td></tr>" for r in receipts]
        parts.append("</table>")
    return "".join(parts)


def _how_to_verify(insp: Inspection) -> str:
    return ("<h2>How to verify this report</h2><ol>"
            "<li>Receive the evidence bundle (zip) this report came with; it holds the device's items, its "
            "certificate, <span class='mono'>report/report.pdf</span>, <span class='mono'>report/report.html</span> "
            "and the officer-signed <span class='mono'>report/manifest.json</span>.</li>"
            "<li>Run <span class='mono'>evidence-agent verify BUNDLE.zip --ca customs-device-ca.pem</span>: exit 0 "
            "means every item is intact, device-signed, in sequence and chained, the report's signature holds, "
            "both rendered files match the manifest, every item the report lists is present with the same hash, "
            "and the device sealed the manifest's SHA-256 in a <i>report</i> record.</li>"
            "<li>Without our software: the manifest's <i>body</i> in RFC 8785 form is signed (ECDSA P-256, SHA-256) "
            "by the officer certificate in <i>x5c</i> — <span class='mono'>openssl dgst -sha256 -verify</span>; each "
            "item's record is checked as described in the bundle's README.txt.</li>"
            f"<li>The sealed range starts with the <i>inspection_start</i> record (seq {_v(insp.start_seq)}) and "
            f"ends with <i>inspection_end</i> (seq {_v(insp.end_seq)}); every record between names case "
            f"{_v(insp.case)}.</li></ol>")

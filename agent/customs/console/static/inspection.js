// Inspection page: every button is one signed command; the page only shows what the device signed back.
"use strict";
const params = new URLSearchParams(location.search);
const CASE = params.get("case");
let TITLES = {};  // the check-in steps' titles, from /api/vocab
let current = null;

function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text; s.style.color = bad ? "#ffb4b4" : "#cfe3ff";
}
async function api(method, path, body) {
  const r = await fetch(path, {method, headers: {"content-type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : r.statusText);
  return data;
}
async function step(action, body, label) {
  status(`${label}…`);
  document.querySelectorAll("button").forEach(b => b.disabled = true);
  try {
    const res = await api("POST", `/api/inspection/${action}?case=${encodeURIComponent(CASE)}`, body || {});
    status(`${label}: ${res.ok === false ? "NOT confirmed" : "done"}${res.seq != null ? " (sealed seq " + res.seq + ")" : ""}`);
    await refresh();
    return res;
  } catch (e) {
    status(`${label}: ${e.message}`, true);
  } finally {
    document.querySelectorAll("button").forEach(b => b.disabled = false);
  }
}
function mmss(s) {
  const neg = s < 0; s = Math.abs(Math.round(s));
  return `${neg ? "-" : ""}${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
function tick() {
  if (!current) return;
  const i = current.inspection, t = document.getElementById("timer");
  if (!i.started_at) { t.textContent = `planned ${i.planned_minutes}:00`; return; }
  const end = i.ended_at ? Date.parse(i.ended_at) : Date.now();
  const elapsed = (end - Date.parse(i.started_at)) / 1000;
  t.textContent = `${mmss(elapsed)} / ${i.planned_minutes}:00`;
  t.className = "timer" + (elapsed > i.planned_minutes * 60 ? " over" : "");
}
function entryText(e) {
  let s = `${e.at.slice(11, 19)} ${e.kind}${e.label ? " " + e.label : ""}${e.note ? ": " + e.note : ""}`;
  if (e.seq != null) s += ` — seq ${e.seq}`;
  if (e.ok === false) s += " — NOT confirmed";
  return s;
}
function render(d) {
  current = d;
  const i = d.inspection;
  document.getElementById("case-title").textContent = `Case ${i.case} — ${i.state}`;
  document.getElementById("case-sub").textContent =
    `${i.enterprise}${i.representative ? ", represented by " + i.representative : ""} · ${i.registered_site} · device ${i.device} (site ${i.site}) · ${d.received} item(s) received`;
  document.getElementById("live-link").href = `/live/${encodeURIComponent(i.site)}/${encodeURIComponent(i.device)}`;
  const rd = document.getElementById("readiness");
  if (i.readiness) {
    rd.replaceChildren(el("span", {class: i.readiness.passed ? "ok" : "bad", text: i.readiness.passed ? "self-test passed" : "self-test FAILED"}),
      ...i.readiness.checks.map(c => el("div", {class: c.status === "fail" ? "bad" : "muted", text: `${c.name}: ${c.status} — ${c.detail || ""}`})));
  }
  const tb = document.querySelector("#checkin tbody");
  if (!tb.children.length) tb.replaceChildren(...d.steps.map(s => {  // built once: typed notes survive refreshes
    const input = el("input", {type: "text", id: `checkin-note-${s}`, placeholder: "note"});
    const btn = el("button", {class: "btn", id: `checkin-${s}`, text: "Confirm"});
    btn.onclick = () => step("checkin", {step: s, note: input.value || null}, TITLES[s]);
    return el("tr", {}, el("td", {text: TITLES[s]}), el("td", {}, input), el("td", {}, btn),
      el("td", {class: "muted", id: `result-${s}`, text: "not done"}));
  }));
  for (const s of d.steps) {
    const e = i.checkin[s];
    let result = "not done", cls = "muted";
    if (e) {
      result = e.ok === false ? "NOT confirmed" : "confirmed"; cls = e.ok === false ? "bad" : "ok";
      if (e.details && e.details.location) {
        const l = e.details.location;
        result += l.inside == null ? " — no GPS fix" :
          ` — ${l.inside ? "inside" : "OUTSIDE"}, ${Math.abs(l.distance_m)} m ${l.inside ? "inside" : "outside"} the boundary, fix ${l.quality}`;
      }
      result += ` (seq ${e.seq})`;
    }
    const cell = document.getElementById(`result-${s}`);
    cell.textContent = result; cell.className = cls;
  }
  const al = document.getElementById("alerts");
  al.replaceChildren(...(d.alerts.length ? d.alerts.map(a => el("li", {class: "alert", "data-type": a.type},
    el("b", {text: `${a.type} `}), el("span", {class: "muted", text: `${a.at.slice(11, 19)} seq ${a.seq}`}),
    ...(a.summary ? [el("div", {text: a.summary})] : []),
    el("div", {text: a.advice}))) : [el("li", {class: "muted", text: "none"})]));
  document.getElementById("map").innerHTML = d.site_map;  // server-built SVG, every label escaped there
  const tl = document.getElementById("timeline");
  tl.replaceChildren(...i.entries.map(e => el("li", {class: e.kind, text: entryText(e)})));
  const rep = document.getElementById("report");
  if (i.report) {
    const q = `?case=${encodeURIComponent(i.case)}`;
    rep.replaceChildren(el("div", {class: i.report.verified ? "ok" : "bad", id: "report-status",
      text: i.report.verified ? "Report signed, sealed by the device and verified" : "Report built — verification FAILED"}),
      el("div", {class: "mono", text: `manifest SHA-256 ${i.report.manifest_sha256}; sealed at seq ${i.report.sealed_seq}`}),
      el("a", {href: `/api/inspection/report/report.pdf${q}`, id: "report-pdf", text: "PDF"}), " · ",
      el("a", {href: `/api/inspection/report/report.html${q}`, text: "HTML"}), " · ",
      el("a", {href: `/api/inspection/report/bundle.zip${q}`, text: "evidence bundle"}));
  }
  tick();
}
async function refresh() {
  try {
    TITLES = (await vocab()).step_titles;
    render(await api("GET", `/api/inspection?case=${encodeURIComponent(CASE)}`));
  }
  catch (e) { status(e.message, true); }
}
async function listView() {
  document.getElementById("list-view").hidden = false;
  const rows = await api("GET", "/api/inspections");
  document.querySelector("#cases tbody").replaceChildren(...rows.map(r => el("tr", {},
    el("td", {}, el("a", {href: `/inspections?case=${encodeURIComponent(r.case)}`, text: r.case})),
    el("td", {text: r.state}), el("td", {text: r.enterprise}), el("td", {text: r.device}), el("td", {text: r.created}))));
  document.getElementById("open-form").onsubmit = async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target), body = Object.fromEntries(f.entries());
    body.officers = (body.officers || "").split(",").map(s => s.trim()).filter(Boolean);
    body.planned_minutes = Number(body.planned_minutes || 25);
    for (const k of ["representative", "registered_site"]) if (!body[k]) body[k] = null;
    try { await api("POST", "/api/inspections", body); location.href = `/inspections?case=${encodeURIComponent(body.case)}`; }
    catch (e) { status(e.message, true); }
  };
}
if (!CASE) {
  listView();
} else {
  document.getElementById("case-view").hidden = false;
  document.getElementById("btn-ready").onclick = () => step("ready", {}, "Self-test");
  document.getElementById("btn-start").onclick = () => step("start", {}, "Start");
  document.getElementById("btn-end").onclick = () => step("end", {}, "End");
  document.getElementById("btn-report").onclick = () => step("report", {}, "Report");
  document.getElementById("btn-mark").onclick = () => {
    const n = document.getElementById("note").value;
    if (!n) { status("a mark needs a note", true); return; }
    step("mark", {note: n}, "Mark");
  };
  document.getElementById("btn-snapshot").onclick = () => step("snapshot", {note: document.getElementById("note").value || null}, "Snapshot");
  document.getElementById("btn-decision").onclick = () => {
    const reason = document.getElementById("reason").value;
    if (!reason) { status("a decision needs a reason", true); return; }
    step("decision", {decision: document.getElementById("decision").value, reason}, "Decision");
  };
  refresh();
  setInterval(refresh, 2000);
  setInterval(tick, 1000);
}

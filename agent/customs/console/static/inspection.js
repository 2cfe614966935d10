// Inspection page: every button is one signed command; the page only shows what the device signed back.
"use strict";
const params = new URLSearchParams(location.search);
const CASE = params.get("case");
let TITLES = {};  // the check-in steps' titles, from /api/vocab
let current = null;

function status(text, bad) {  // page-level problems only (loading the case); a step's result goes beside its control
  const s = document.getElementById("status");
  s.textContent = text; s.style.color = bad ? "#ffb4b4" : "#cfe3ff";
}
async function api(method, path, body) {
  const r = await fetch(path, {method, headers: {"content-type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const d = data.detail;
    throw new Error(typeof d === "string" ? d : Array.isArray(d) && d[0] && d[0].msg ? `${(d[0].loc || []).slice(-1)[0]}: ${d[0].msg}` : `${r.status} ${r.statusText}`);
  }
  return data;
}
// Which steps a case state allows; the buttons follow it (and all wait while one step runs).
const ALLOWED = {
  ready: ["open", "started"], start: ["open"], notice: ["open"], end: ["started"], report: ["ended", "reported"],
  mark: ["started"], snapshot: ["started"], decision: ["started"], checkin: ["started"],
};
let busy = false;
let shownState = null;
function applyState() {
  const state = current ? current.inspection.state : null;
  if (state !== shownState) {  // a new case state: errors beside the controls are stale now
    if (shownState !== null) document.querySelectorAll(".msg.bad").forEach((m) => { m.textContent = ""; m.className = "msg"; });
    shownState = state;
  }
  for (const [key, states] of Object.entries(ALLOWED)) {
    const on = !busy && states.includes(state);
    const ids = key === "checkin" ? (current ? current.steps.map((s) => `checkin-${s}`) : []) : [`btn-${key}`];
    for (const id of ids) {
      const b = document.getElementById(id);
      if (!b) continue;
      b.disabled = !on;
      b.title = on ? "" : busy ? "another step is running" : `not while the case is ${state}`;
    }
  }
  const rep = document.getElementById("btn-report");
  rep.textContent = state === "reported" ? "Rebuild signed report…" : "Build signed report";
}
function say(key, text, kind) {
  const m = document.getElementById(`msg-${key}`);
  if (!m) return;
  m.textContent = text; m.className = `msg ${kind || ""}`;
}
// A dialog that says what the step does and cannot be undone; resolves true on Confirm (with askReason:
// the reason typed, and Confirm is refused while it is empty).
function confirmStep(text, askReason = false) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const box = document.getElementById("confirm-reason-box"), input = document.getElementById("confirm-reason");
  const msg = document.getElementById("confirm-msg");
  box.hidden = !askReason; input.value = ""; msg.textContent = "";
  input.oninput = () => { msg.textContent = ""; };
  return new Promise((resolve) => {
    document.getElementById("confirm-ok").onclick = () => {
      if (!askReason) { d.close(); resolve(true); return; }
      const reason = input.value.trim();
      if (!reason) { msg.textContent = "give the reason for the new version"; input.focus(); return; }
      d.close(); resolve(reason);
    };
    document.getElementById("confirm-cancel").onclick = () => { d.close(); resolve(false); };
    d.oncancel = () => resolve(false);
    d.showModal();
  });
}
async function step(action, body, key, label) {
  say(key, `${label}…`, "busy");
  busy = true; applyState();
  try {
    const res = await api("POST", `/api/inspection/${action}?case=${encodeURIComponent(CASE)}`, body || {});
    const seq = res.seq != null ? ` — sealed seq ${res.seq}` : res.sealed_seq != null ? ` — sealed seq ${res.sealed_seq}` : "";
    say(key, `${res.ok === false ? "NOT confirmed" : "done"}${seq}`, res.ok === false ? "bad" : "ok");
    return res;
  } catch (e) {
    say(key, e.message, "bad");
  } finally {
    busy = false;
    await refresh();
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
function stillUrl(seq) { return `/api/inspection/still?case=${encodeURIComponent(CASE)}&seq=${encodeURIComponent(seq)}`; }
function stillOf(seq) { return current ? current.stills.find((s) => s.seq === seq) : null; }
function openStill(seq, entry) {
  const s = stillOf(seq) || {};
  Viewer.open(stillUrl(seq), [["Case", CASE], ["Seq", seq], ["Label (device-signed)", s.label || (entry && entry.label)],
    ["Captured (device clock)", s.at], ["GPS (device-signed)", gpsCaption(s.gps || (entry && entry.details && entry.details.gps))],
    ["Clock", s.time ? clockText(s.time) : null], ["Officer's note", s.note || (entry && entry.note)]]);
}
// A thumbnail once the ingest has the picture; until then a line saying it is on its way.
function thumb(seq, entry) {
  if (seq == null) return el("span", {class: "muted", text: ""});
  const s = stillOf(seq);
  if (!s || !s.received) return el("span", {class: "muted thumb-wait", text: "picture not received yet"});
  const img = el("img", {class: "thumb", src: stillUrl(seq), alt: `still seq ${seq}`, loading: "lazy", "data-seq": String(seq)});
  const b = el("button", {class: "thumb-btn", type: "button", title: "open full size", "data-seq": String(seq)}, img);
  b.onclick = () => openStill(seq, entry);
  return b;
}
function entryText(e) {
  let s = `${e.at.slice(11, 19)} ${e.kind}${e.label ? " " + e.label : ""}${e.note ? ": " + e.note : ""}`;
  if (e.seq != null) s += ` — seq ${e.seq}`;
  if (e.ok === false) s += " — NOT confirmed";
  return s;
}
function duration(a) {
  if (a.ongoing) return current && current.inspection.end_seq != null ? "no end sealed before the inspection ended" : "ongoing (no end sealed yet)";
  if (a.duration_s == null) return a.end_at ? `ended ${String(a.end_at).slice(11, 19)}` : "";
  return `ended ${String(a.end_at).slice(11, 19)} (seq ${a.end_seq}) — lasted ${mmss(a.duration_s)}`;
}
function renderReadiness(r) {
  const rd = document.getElementById("readiness");
  if (!r) return;
  const warned = (r.warnings || []).length > 0;
  const [cls, text] = !r.passed ? ["bad", "self-test FAILED"] : warned ? ["warn", `self-test passed with ${r.warnings.length} warning(s)`] : ["ok", "self-test passed"];
  rd.className = "";
  rd.replaceChildren(el("span", {class: cls, id: "readiness-result", text}), el("span", {class: "muted", text: ` at ${String(r.at).slice(11, 19)}`}),
    ...(r.checks || []).map((c) => el("div", {class: c.status === "fail" ? "bad" : c.status === "warn" ? "warn" : "muted",
      text: `${c.name}: ${c.status} — ${c.detail || ""}`})));
}
function renderNotice(i) {  // advance notice: when, and whether the device sealed it
  const box = document.getElementById("notice");
  document.getElementById("notice-ctl").hidden = !(i.scheduled && i.state === "open" && !(i.notice && i.notice.delivered));
  if (!i.scheduled) { box.replaceChildren(); return; }
  const n = i.notice;
  const [cls, text] = !n ? ["warn", "advance notice not sent"] : n.delivered
    ? ["ok", `advance notice delivered, sealed by the device at seq ${n.seq}`] : ["bad", `advance notice NOT delivered: ${n.error}`];
  box.className = "";
  box.replaceChildren(el("div", {text: `scheduled ${i.scheduled}`}), el("div", {class: cls, id: "notice-result", text}));
}
function render(d) {
  current = d;
  const i = d.inspection;
  document.getElementById("case-title").textContent = `Case ${i.case} — ${i.state}`;
  document.getElementById("case-sub").textContent =
    `${i.enterprise}${i.representative ? ", represented by " + i.representative : ""} · ${i.registered_site} · device ${i.device} (site ${i.site}) · ${d.received} item(s) received`;
  const liveUrl = `/live/${encodeURIComponent(i.site)}/${encodeURIComponent(i.device)}`;
  document.getElementById("live-link").href = liveUrl;
  const box = document.getElementById("live-box");
  const frame = document.getElementById("live-frame");
  if (i.state === "started" && !frame) {  // one live session while the case runs; kept across refreshes
    box.replaceChildren(el("iframe", {id: "live-frame", src: `${liveUrl}?embed=1`, title: "live video", allow: "autoplay"}));
  } else if (i.state !== "started" && frame) {
    box.replaceChildren(el("p", {class: "muted", text: "The inspection has ended; the live view is closed."}));
  }
  renderNotice(i);
  renderReadiness(i.readiness);
  const tb = document.querySelector("#checkin tbody");
  if (!tb.children.length) tb.replaceChildren(...d.steps.map(s => {  // built once: typed notes survive refreshes
    const input = el("input", {type: "text", id: `checkin-note-${s}`, placeholder: "note", maxlength: "2000"});
    const btn = el("button", {class: "btn", id: `checkin-${s}`, text: "Confirm"});
    btn.onclick = () => step("checkin", {step: s, note: input.value || null}, `checkin-${s}`, TITLES[s]);
    return el("tr", {}, el("td", {text: TITLES[s]}), el("td", {}, input, el("span", {class: "msg", id: `msg-checkin-${s}`})),
      el("td", {}, btn), el("td", {class: "muted", id: `result-${s}`, text: "not done"}), el("td", {class: "preview", id: `preview-${s}`}));
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
      const g = e.details && e.details.gps;
      if (g && g.talker === "sim") { result += " — GPS SIMULATED"; cls = "warn"; }
      result += ` (seq ${e.seq})`;
    }
    const cell = document.getElementById(`result-${s}`);
    cell.textContent = result; cell.className = cls;
    const pv = document.getElementById(`preview-${s}`);
    const key = e ? `${e.seq}:${(stillOf(e.seq) || {}).received}` : "";
    if (pv.dataset.key !== key) { pv.dataset.key = key; pv.replaceChildren(e ? thumb(e.seq, e) : ""); }
  }
  const al = document.getElementById("alerts");
  al.replaceChildren(...(d.alerts.length ? d.alerts.map(a => el("li", {class: "alert" + (a.ongoing ? " ongoing" : ""), "data-type": a.type},
    el("b", {text: `${a.type} `}), el("span", {class: "muted", text: `onset ${String(a.at).slice(11, 19)} seq ${a.seq}`}),
    el("div", {class: "alert-end", text: duration(a)}),
    ...(a.summary ? [el("div", {text: a.summary})] : []),
    el("div", {text: a.advice}))) : [el("li", {class: "muted", text: "none"})]));
  document.getElementById("map").innerHTML = d.site_map;  // server-built SVG, every label escaped there
  const tl = document.getElementById("timeline");
  const tkey = JSON.stringify([i.entries.length, d.stills.map((s) => s.received)]);
  if (tl.dataset.key !== tkey) {  // rebuilt only when something changed: a scrolled page stays put
    tl.dataset.key = tkey;
    tl.replaceChildren(...i.entries.map(e => {
      const kids = [el("span", {class: "entry-text", text: entryText(e)})];
      const g = e.details && e.details.gps;
      if (g && (e.kind === "checkin" || e.kind === "snapshot")) kids.push(el("span", {class: g.talker === "sim" ? "warn gps" : "muted gps", text: ` · GPS ${gpsCaption(g)}`}));
      if (e.kind === "readiness" && e.details && (e.details.warnings || []).length && e.ok !== false) kids.push(el("span", {class: "warn", text: " (warnings)"}));
      if ((e.kind === "checkin" || e.kind === "snapshot") && e.seq != null) kids.push(thumb(e.seq, e));
      return el("li", {class: e.kind, "data-seq": e.seq == null ? "" : String(e.seq)}, ...kids);
    }).reverse());
  }
  const rep = document.getElementById("report");
  if (i.report) {
    const q = `?case=${encodeURIComponent(i.case)}`;
    rep.replaceChildren(el("div", {class: i.report.verified ? "ok" : "bad", id: "report-status",
      text: i.report.verified ? "Report signed, sealed by the device and verified" : "Report built — verification FAILED"}),
      el("div", {id: "report-version", text: `version ${i.report.version || 1}` + (i.report.supersedes
        ? ` — supersedes v${(i.report.version || 2) - 1} (${i.report.supersedes.slice(0, 16)}…): ${i.report.reason}` : "")}),
      el("div", {class: "mono", text: `manifest SHA-256 ${i.report.manifest_sha256}; sealed at seq ${i.report.sealed_seq}`}),
      el("a", {href: `/api/inspection/report/report.pdf${q}`, id: "report-pdf", text: "PDF"}), " · ",
      el("a", {href: `/api/inspection/report/report.html${q}`, text: "HTML"}), " · ",
      el("a", {href: `/api/inspection/report/bundle.zip${q}`, text: "evidence bundle"}));
  }
  applyState();
  tick();
}
async function refresh() {
  try {
    TITLES = (await vocab()).step_titles;
    render(await api("GET", `/api/inspection?case=${encodeURIComponent(CASE)}`));
    status("");
  }
  catch (e) { status(`case not loaded: ${e.message}`, true); }
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
    body.scheduled = body.scheduled ? new Date(body.scheduled).toISOString() : null;  // local time → UTC
    try { await api("POST", "/api/inspections", body); location.href = `/inspections?case=${encodeURIComponent(body.case)}`; }
    catch (e) { say("open", e.message, "bad"); }
  };
}
if (!CASE) {
  listView();
} else {
  document.getElementById("case-view").hidden = false;
  const on = (id, fn) => { document.getElementById(id).onclick = fn; };
  on("btn-ready", () => step("ready", {}, "ready", "Self-test"));
  on("btn-notice", () => step("notice", {}, "notice", "Advance notice"));
  on("btn-start", () => step("start", {}, "start", "Start"));
  on("btn-end", async () => {
    if (await confirmStep(`End inspection ${CASE}? The device seals the end now; nothing can be added to the case afterwards.`)) step("end", {}, "end", "End");
  });
  on("btn-report", async () => {
    const rep = current && current.inspection.state === "reported" ? current.inspection.report : null;
    if (!rep) { step("report", {}, "report", "Report"); return; }
    const v = rep.version || 1;
    const reason = await confirmStep(`Signed report v${v} of ${CASE} exists. Build, sign and seal version ${v + 1}, which supersedes it? Both versions are kept.`, true);
    if (reason) step("report", {reason}, "report", "Report");
  });
  on("btn-mark", () => {
    const n = document.getElementById("note").value.trim();
    if (!n) { say("mark", "a mark needs a note", "bad"); return; }
    step("mark", {note: n}, "mark", "Mark").then((r) => { if (r) document.getElementById("note").value = ""; });
  });
  on("btn-snapshot", () => step("snapshot", {note: document.getElementById("note").value.trim() || null}, "snapshot", "Snapshot")
    .then((r) => { if (r) document.getElementById("note").value = ""; }));
  on("btn-decision", async () => {
    const reason = document.getElementById("reason").value.trim();
    const sel = document.getElementById("decision");
    if (!reason) { say("decision", "a decision needs a reason", "bad"); return; }
    const what = sel.options[sel.selectedIndex].text;
    if (await confirmStep(`Seal the decision "${what}" for ${CASE}? Reason: ${reason}`)) {
      step("decision", {decision: sel.value, reason}, "decision", "Decision");
    }
  });
  refresh();
  setInterval(() => { if (!busy) refresh(); }, 2000);
  setInterval(tick, 1000);
}

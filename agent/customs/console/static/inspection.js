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
      b.title = on ? "" : busy ? t("another step is running") : t("not while the case is {state}", {state: stateWord(state)});
    }
  }
  const rep = document.getElementById("btn-report");
  rep.textContent = state === "reported" ? t("Rebuild signed report…") : t("Build signed report");
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
      if (!reason) { msg.textContent = t("give the reason for the new version"); input.focus(); return; }
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
    const res = await api("POST", `/api/inspection/${action}?case=${encodeURIComponent(CASE)}`, withDevice(action, body || {}));
    const n = res.seq != null ? res.seq : res.sealed_seq;
    const seq = n != null ? " — " + t("sealed seq {seq}", {seq: n}) : "";
    say(key, `${res.ok === false ? t("NOT confirmed") : t("done")}${seq}`, res.ok === false ? "bad" : "ok");
    return res;
  } catch (e) {
    say(key, e.message, "bad");
  } finally {
    busy = false;
    await refresh();
  }
}
// "full" when the officer ticked the full-resolution box beside a step (the camera's full sensor, one at a time).
function resolution(box) { return document.getElementById(box).checked ? "full" : "stream"; }
// Several cameras: a device step goes to the camera picked in the toolbar (the case's primary by default).
const DEVICE_STEPS = ["ready", "notice", "checkin", "mark", "snapshot", "decision"];
function several() { return current && current.inspection.devices.length > 1; }
function withDevice(action, body) {
  const pick = document.getElementById("device-pick").value;
  return several() && DEVICE_STEPS.includes(action) && pick ? {...body, device: pick} : body;
}
function devicePrefix(device) { return several() && device ? `[${device}] ` : ""; }
function renderLive(i) {  // one live view per camera of the case, kept across refreshes; a grid for several
  const box = document.getElementById("live-box");
  const live = (d) => `/live/${encodeURIComponent(i.site)}/${encodeURIComponent(d)}`;
  document.getElementById("live-link").href = live(i.device);
  const open = box.querySelector("iframe");
  if (i.state === "started" && !open) {
    box.classList.toggle("grid", i.devices.length > 1);
    box.replaceChildren(...i.devices.map((d, n) => {
      const frame = el("iframe", {id: n === 0 ? "live-frame" : `live-frame-${n}`, class: "live-frame", "data-device": d,
        src: `${live(d)}?embed=1`, title: t("live video of {device}", {device: d}), allow: "autoplay"});
      return i.devices.length > 1 ? el("figure", {}, el("figcaption", {text: d}), frame) : frame;
    }));
  } else if (i.state !== "started" && open) {
    box.classList.remove("grid");
    box.replaceChildren(el("p", {class: "muted", text: t("The inspection has ended; the live view is closed.")}));
  }
  const ctl = document.getElementById("device-ctl"), pick = document.getElementById("device-pick");
  ctl.hidden = i.devices.length < 2;
  if (pick.options.length !== i.devices.length) pick.replaceChildren(...i.devices.map((d) => el("option", {value: d, text: d})));
}
function mmss(s) {
  const neg = s < 0; s = Math.abs(Math.round(s));
  return `${neg ? "-" : ""}${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
function tick() {
  if (!current) return;
  const i = current.inspection, tm = document.getElementById("timer");
  if (!i.started_at) { tm.textContent = t("planned {m}:00", {m: i.planned_minutes}); return; }
  const end = i.ended_at ? Date.parse(i.ended_at) : Date.now();
  const elapsed = (end - Date.parse(i.started_at)) / 1000;
  tm.textContent = `${mmss(elapsed)} / ${i.planned_minutes}:00`;
  tm.className = "timer" + (elapsed > i.planned_minutes * 60 ? " over" : "");
}
function deviceOf(entry) { return (entry && entry.device) || (current && current.inspection.device); }
function stillUrl(seq, device) {
  return `/api/inspection/still?case=${encodeURIComponent(CASE)}&seq=${encodeURIComponent(seq)}&device=${encodeURIComponent(device)}`;
}
// A still's pixel size as its record states it ("4608 × 2592"), or "" when it states none.
function pixelSize(x) {
  const w = Number(x && x.width), h = Number(x && x.height);
  return Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0 ? `${w} × ${h}` : "";
}
function stillOf(seq, device) { return current ? current.stills.find((s) => s.seq === seq && s.device === device) : null; }
function openStill(seq, entry) {
  const dev = deviceOf(entry), s = stillOf(seq, dev) || {};
  Viewer.open(stillUrl(seq, dev), [[t("Case"), CASE], [t("Device"), dev], [t("Seq"), seq], [t("Label (device-signed)"), s.label || (entry && entry.label)],
    [t("Captured (device clock)"), s.at], [t("GPS (device-signed)"), gpsCaption(s.gps || (entry && entry.details && entry.details.gps))],
    [t("Clock"), s.time ? clockText(s.time) : null], [t("Officer's note"), s.note || (entry && entry.note)],
    [t("Pixel size (device-signed)"), pixelSize(s) ? pixelSize(s) + (s.resolution === "full" ? ` (${t("full resolution")})` : "") : null]]);
}
// A thumbnail once the ingest has the picture; until then a line saying it is on its way.
function thumb(seq, entry) {
  if (seq == null) return el("span", {class: "muted", text: ""});
  const dev = deviceOf(entry), s = stillOf(seq, dev);
  if (!s || !s.received) return el("span", {class: "muted thumb-wait", text: t("picture not received yet")});
  const img = el("img", {class: "thumb", src: stillUrl(seq, dev), alt: t("still seq {seq}", {seq}), loading: "lazy", "data-seq": String(seq),
    "data-device": dev});
  const b = el("button", {class: "thumb-btn", type: "button", title: t("open full size"), "data-seq": String(seq), "data-device": dev}, img);
  b.onclick = () => openStill(seq, entry);
  return b;
}
// Words of the vocabulary (agent/core/vocab.py via /api/vocab), translated; an unknown key is shown as given.
let VOCAB = {};
function word(labels, key) { return key != null && labels && labels[key] ? t(labels[key]) : key; }
function stateWord(state) {
  const words = {open: t("open"), started: t("started"), ended: t("ended"), reported: t("reported")};
  return words[state] || state;
}
function labelWord(kind, label) {
  const labels = {decision: VOCAB.decision_labels, end: VOCAB.outcome_labels, checkin: VOCAB.step_titles, snapshot: VOCAB.step_titles}[kind];
  return word(labels, label);
}
function entryText(e) {
  let s = `${e.at.slice(11, 19)} ${devicePrefix(deviceOf(e))}${word(VOCAB.entry_labels, e.kind)}${e.label ? " " + labelWord(e.kind, e.label) : ""}${e.note ? ": " + e.note : ""}`;
  if (e.seq != null) s += ` — seq ${e.seq}`;
  const full = e.details && e.details.resolution === "full";
  if (full) s += " — " + t("full resolution {size}", {size: pixelSize(e.details) || ""}).trim();
  if (e.ok === false) s += " — " + t("NOT confirmed");
  return s;
}
// A restart's summary in words: what happened (translated) and for how long the device was silent.
function restartSummary(a) {
  if (!a.summary_msg) return a.summary;
  const silent = a.details && a.details.silent_s;
  return t(a.summary_msg) + (silent != null ? " " + t("after {s} s without a record", {s: silent}) : "");
}
function duration(a) {
  if (a.ongoing) return current && current.inspection.end_seq != null ? t("no end sealed before the inspection ended") : t("ongoing (no end sealed yet)");
  if (a.duration_s == null) return a.end_at ? t("ended {at}", {at: String(a.end_at).slice(11, 19)}) : "";
  return t("ended {at} (seq {seq}) — lasted {d}", {at: String(a.end_at).slice(11, 19), seq: a.end_seq, d: mmss(a.duration_s)});
}
function renderReadiness(r) {
  const rd = document.getElementById("readiness");
  if (!r) return;
  const warned = (r.warnings || []).length > 0;
  const [cls, text] = !r.passed ? ["bad", t("self-test FAILED")] : warned ? ["warn", t("self-test passed with {n} warning(s)", {n: r.warnings.length})] : ["ok", t("self-test passed")];
  rd.className = "";
  rd.replaceChildren(el("span", {class: cls, id: "readiness-result", text}), el("span", {class: "muted", text: " " + t("at {at}", {at: String(r.at).slice(11, 19)})}),
    ...(r.checks || []).map((c) => el("div", {class: c.status === "fail" ? "bad" : c.status === "warn" ? "warn" : "muted",
      text: `${c.name}: ${c.status} — ${c.detail || ""}`})));
}
function renderNotice(i) {  // advance notice: when, and whether the device sealed it
  const box = document.getElementById("notice");
  document.getElementById("notice-ctl").hidden = !(i.scheduled && i.state === "open" && !(i.notice && i.notice.delivered));
  if (!i.scheduled) { box.replaceChildren(); return; }
  const n = i.notice;
  const [cls, text] = !n ? ["warn", t("advance notice not sent")] : n.delivered
    ? ["ok", t("advance notice delivered, sealed by the device at seq {seq}", {seq: n.seq})]
    : ["bad", t("advance notice NOT delivered: {error}", {error: n.error})];
  box.className = "";
  box.replaceChildren(el("div", {text: t("scheduled {time}", {time: i.scheduled})}), el("div", {class: cls, id: "notice-result", text}));
}
function render(d) {
  current = d;
  const i = d.inspection;
  document.getElementById("case-title").textContent = t("Case {case} — {state}", {case: i.case, state: stateWord(i.state)});
  document.getElementById("case-sub").textContent =
    `${i.enterprise}${i.representative ? t(", represented by {name}", {name: i.representative}) : ""} · ${i.registered_site} · ` +
    t("device {device} (site {site}) · {n} item(s) received", {device: i.devices.join(", "), site: i.site, n: d.received});
  renderLive(i);
  renderNotice(i);
  renderReadiness(i.readiness);
  const tb = document.querySelector("#checkin tbody");
  if (!tb.children.length) tb.replaceChildren(...d.steps.map(s => {  // built once: typed notes survive refreshes
    const input = el("input", {type: "text", id: `checkin-note-${s}`, placeholder: t("note"), maxlength: "2000"});
    const btn = el("button", {class: "btn", id: `checkin-${s}`, text: t("Confirm")});
    btn.onclick = () => step("checkin", {step: s, note: input.value || null, resolution: resolution("checkin-full")},
      `checkin-${s}`, t(TITLES[s]));
    return el("tr", {}, el("td", {text: t(TITLES[s])}), el("td", {}, input, el("span", {class: "msg", id: `msg-checkin-${s}`})),
      el("td", {}, btn), el("td", {class: "muted", id: `result-${s}`, text: t("not done")}), el("td", {class: "preview", id: `preview-${s}`}));
  }));
  for (const s of d.steps) {
    const e = i.checkin[s];
    let result = t("not done"), cls = "muted";
    if (e) {
      result = e.ok === false ? t("NOT confirmed") : t("confirmed"); cls = e.ok === false ? "bad" : "ok";
      if (e.details && e.details.location) {
        const l = e.details.location, m = {m: Math.abs(l.distance_m), q: t(l.quality)};
        result += " — " + (l.inside == null ? t("no GPS fix") :
          l.inside ? t("inside, {m} m inside the boundary, fix {q}", m) : t("OUTSIDE, {m} m outside the boundary, fix {q}", m));
      }
      const g = e.details && e.details.gps;
      if (g && g.talker === "sim") { result += " — " + t("GPS SIMULATED"); cls = "warn"; }
      result += ` (${devicePrefix(deviceOf(e))}seq ${e.seq})`;
    }
    const cell = document.getElementById(`result-${s}`);
    cell.textContent = result; cell.className = cls;
    const pv = document.getElementById(`preview-${s}`);
    const key = e ? `${deviceOf(e)}:${e.seq}:${(stillOf(e.seq, deviceOf(e)) || {}).received}` : "";
    if (pv.dataset.key !== key) { pv.dataset.key = key; pv.replaceChildren(e ? thumb(e.seq, e) : ""); }
  }
  const al = document.getElementById("alerts");
  al.replaceChildren(...(d.alerts.length ? d.alerts.map(a => el("li", {class: "alert" + (a.ongoing ? " ongoing" : ""), "data-type": a.type,
    "data-device": a.device || ""},
    el("b", {text: `${devicePrefix(a.device)}${alertText(a)} `}), el("span", {class: "muted", text: t("onset {at} seq {seq}", {at: String(a.at).slice(11, 19), seq: a.seq})}),
    el("div", {class: "alert-end", text: duration(a)}),
    ...(a.summary ? [el("div", {text: restartSummary(a)})] : []),
    el("div", {text: t(a.advice)}))) : [el("li", {class: "muted", text: t("none")})]));
  document.getElementById("map").innerHTML = d.site_map;  // server-built SVG, every label escaped there
  const tl = document.getElementById("timeline");
  const tkey = JSON.stringify([i.entries.length, d.stills.map((s) => s.received)]);
  if (tl.dataset.key !== tkey) {  // rebuilt only when something changed: a scrolled page stays put
    tl.dataset.key = tkey;
    tl.replaceChildren(...i.entries.map(e => {
      const kids = [el("span", {class: "entry-text", text: entryText(e)})];
      const g = e.details && e.details.gps;
      if (g && (e.kind === "checkin" || e.kind === "snapshot")) kids.push(el("span", {class: g.talker === "sim" ? "warn gps" : "muted gps", text: ` · ${t("GPS")} ${gpsCaption(g)}`}));
      if (e.kind === "readiness" && e.details && (e.details.warnings || []).length && e.ok !== false) kids.push(el("span", {class: "warn", text: " " + t("(warnings)")}));
      if ((e.kind === "checkin" || e.kind === "snapshot") && e.seq != null) kids.push(thumb(e.seq, e));
      return el("li", {class: e.kind, "data-seq": e.seq == null ? "" : String(e.seq), "data-device": deviceOf(e)}, ...kids);
    }).reverse());
  }
  renderAudio(d.audio || []);
  renderZooms(d.zooms || []);
  const rep = document.getElementById("report");
  if (i.report) {
    const q = `?case=${encodeURIComponent(i.case)}`;
    rep.replaceChildren(el("div", {class: i.report.verified ? "ok" : "bad", id: "report-status",
      text: i.report.verified ? t("Report signed, sealed by the device and verified") : t("Report built — verification FAILED")}),
      el("div", {id: "report-version", text: t("version {n}", {n: i.report.version || 1}) + (i.report.supersedes
        ? " — " + t("supersedes v{old} ({sha}…): {reason}", {old: (i.report.version || 2) - 1, sha: i.report.supersedes.slice(0, 16), reason: i.report.reason}) : "")}),
      el("div", {class: "mono", text: t("manifest SHA-256 {sha}; sealed at seq {seq}", {sha: i.report.manifest_sha256, seq: i.report.sealed_seq})}),
      el("a", {href: `/api/inspection/report/report.pdf${q}`, id: "report-pdf", text: "PDF"}), " · ",
      el("a", {href: `/api/inspection/report/report.html${q}`, text: "HTML"}), " · ",
      el("a", {href: `/api/inspection/report/bundle.zip${q}`, text: t("evidence bundle")}));
  }
  applyState();
  tick();
}
// the sealed audio items of the case (two-way voice): who spoke, when, how long; device strings as text only
function renderAudio(rows) {
  const ul = document.getElementById("audio-items");
  if (!ul) return;
  ul.replaceChildren(...(rows.length ? rows.map((a) => el("li", {class: "audio", "data-seq": String(a.seq)},
    el("b", {text: `${String(a.at).slice(11, 19)} ${devicePrefix(a.device)}`}),
    t("{seconds} s of {who} · seq {seq}", {seconds: a.duration_s == null ? "?" : a.duration_s, who: a.who, seq: a.seq}) +
      (a.received ? "" : " " + t("(file not received yet)"))))
    : [el("li", {class: "muted", text: t("none")})]));
}
// the sealed zoom changes of the case (digital zoom): the region shown from then on, why, who asked; text only
function renderZooms(rows) {
  const ul = document.getElementById("zoom-items");
  if (!ul) return;
  ul.replaceChildren(...(rows.length ? rows.map((z) => el("li", {class: "zoom", "data-seq": String(z.seq)},
    el("b", {text: `${String(z.at).slice(11, 19)} ${devicePrefix(z.device)}`}),
    (z.view && z.view.factor > 1 ? t("zoom {f}x at {x}, {y}", {f: z.view.factor, x: z.view.x, y: z.view.y})
      : t("full view")) + ` — ${z.reason_label ? t(z.reason_label) : z.reason}` + (z.officer ? ` (${z.officer})` : "") +
      ` · seq ${z.seq}`))
    : [el("li", {class: "muted", text: t("none")})]));
}
async function refresh() {
  try {
    VOCAB = await vocab();
    TITLES = VOCAB.step_titles;
    render(await api("GET", `/api/inspection?case=${encodeURIComponent(CASE)}`));
    status("");
  }
  catch (e) { status(t("case not loaded: {why}", {why: e.message}), true); }
}
async function listView() {
  document.getElementById("list-view").hidden = false;
  const rows = await api("GET", "/api/inspections");
  document.querySelector("#cases tbody").replaceChildren(...rows.map(r => el("tr", {},
    el("td", {}, el("a", {href: `/inspections?case=${encodeURIComponent(r.case)}`, text: r.case})),
    el("td", {text: stateWord(r.state)}), el("td", {text: r.enterprise}), el("td", {text: (r.devices || [r.device]).join(", ")}), el("td", {text: r.created}))));
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
i18n().then(() => vocab().then((v) => { VOCAB = v; }).catch(() => {})).then(() => {
if (!CASE) {
  listView();
} else {
  document.getElementById("case-view").hidden = false;
  const on = (id, fn) => { document.getElementById(id).onclick = fn; };
  on("btn-ready", () => step("ready", {}, "ready", t("Self-test")));
  on("btn-notice", () => step("notice", {}, "notice", t("Advance notice")));
  on("btn-start", () => step("start", {}, "start", t("Start")));
  on("btn-end", async () => {
    if (await confirmStep(t("End inspection {case}? The device seals the end now; nothing can be added to the case afterwards.", {case: CASE}))) step("end", {}, "end", t("End"));
  });
  on("btn-report", async () => {
    const rep = current && current.inspection.state === "reported" ? current.inspection.report : null;
    if (!rep) { step("report", {}, "report", t("Report")); return; }
    const v = rep.version || 1;
    const reason = await confirmStep(t("Signed report v{v} of {case} exists. Build, sign and seal version {next}, which supersedes it? Both versions are kept.", {v, case: CASE, next: v + 1}), true);
    if (reason) step("report", {reason}, "report", t("Report"));
  });
  on("btn-mark", () => {
    const n = document.getElementById("note").value.trim();
    if (!n) { say("mark", t("a mark needs a note"), "bad"); return; }
    step("mark", {note: n}, "mark", t("Mark")).then((r) => { if (r) document.getElementById("note").value = ""; });
  });
  on("btn-snapshot", () => step("snapshot", {note: document.getElementById("note").value.trim() || null,
    resolution: resolution("snapshot-full")}, "snapshot", t("Snapshot"))
    .then((r) => { if (r) document.getElementById("note").value = ""; }));
  on("btn-decision", async () => {
    const reason = document.getElementById("reason").value.trim();
    const sel = document.getElementById("decision");
    if (!reason) { say("decision", t("a decision needs a reason"), "bad"); return; }
    const what = sel.options[sel.selectedIndex].text;
    if (await confirmStep(t("Seal the decision “{what}” for {case}? Reason: {reason}", {what, case: CASE, reason}))) {
      step("decision", {decision: sel.value, reason}, "decision", t("Decision"));
    }
  });
  refresh();
  setInterval(() => { if (!busy) refresh(); }, 2000);
  setInterval(tick, 1000);
}
});

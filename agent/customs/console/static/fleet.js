// Fleet page: a snapshot, then one message per changed device over /ws/fleet.
"use strict";
const devices = new Map();
const indexed = new Map();  // site/device -> the customs index's figures (records, newest seq, last capture)
let hasIndex = false;
const body = document.querySelector("#fleet tbody");

function row(d) {
  const state = d.online === true ? "online" : d.online === false ? "offline" : "unknown";
  const stateText = {online: t("online"), offline: t("offline"), unknown: t("unknown")}[state];
  const tr = el("tr", {class: state, "data-device": d.device, "data-site": d.site});
  const st = el("td", {class: "state"}, el("span", {class: "dot"}), stateText);
  const alerts = el("td", {class: "alerts"});
  for (const a of (d.alerts || []).slice(0, 4)) alerts.append(el("span", {class: "alert-chip", title: a.time || ""}, alertText(a)));
  const self = selftestCell(d);
  const link = el("a", {class: "btn", href: `/live/${encodeURIComponent(d.site)}/${encodeURIComponent(d.device)}`}, t("Watch live"));
  tr.append(st, el("td", {text: d.site}), el("td", {text: d.device}),
    el("td", {class: "seen", "data-seen": d.last_seen || ""}, ago(d.last_seen)),
    // an offline device's position and clock are what it last reported, never shown as current
    el("td", state === "online" ? {class: d.gps && d.gps.simulated ? "warn gps" : "gps", text: gpsText(d.gps) + (d.gps && d.gps.simulated ? " — " + t("SIMULATED receiver") : "")}
      : {class: "muted", text: d.gps ? t("last reported: {what}", {what: gpsText(d.gps)}) : "—"}),
    el("td", state === "online" ? {text: clockText(d.clock)} : {class: "muted", text: d.clock ? t("last reported: {what}", {what: clockText(d.clock)}) : "—"}),
    self, trustCell(d), alerts, indexCell(d),
    el("td", {}, state === "offline" ? el("span", {class: "muted"}, t("offline")) : link));
  return tr;
}

// Open cases and the newest self-test of this device's cases (amber for warnings), else the status's self-test.
const cases = new Map();  // site/device -> [{case, state, readiness}]
function selftestCell(d) {
  const mine = cases.get(d.site + "/" + d.device) || [];
  const open = mine.filter((c) => c.state === "open" || c.state === "started");
  const tests = mine.map((c) => c.readiness).filter(Boolean).sort((a, b) => (a.at < b.at ? 1 : -1));
  const td = el("td", {class: "selftest"});
  const r = tests[0];
  if (r) {
    const warned = (r.warnings || []).length;
    td.append(el("span", {class: !r.passed ? "bad" : warned ? "warn" : "ok",
      text: !r.passed ? t("FAILED ({what})", {what: (r.failed || []).join(", ")}) : warned ? t("passed with warnings ({what})", {what: r.warnings.join(", ")}) : t("passed")}),
      ` ${String(r.at).replace("T", " ").slice(0, 19)}`);
  } else if (d.selftest) {
    td.append(el("span", {class: d.selftest.ok === false ? "bad" : "", text: (d.selftest.ok === false ? t("FAILED") + " " : d.selftest.ok ? t("passed") + " " : "") + (d.selftest.time || "")}));
  } else td.append("—");
  for (const u of d.upcoming || []) {  // advance notices the device itself reports (sealed on it)
    td.append(el("div", {class: "upcoming", text: t("notice: case {case} scheduled {time}", {case: u.case, time: u.scheduled})}));
  }
  for (const c of open) {
    td.append(el("div", {}, el("a", {class: "case-link", href: `/inspections?case=${encodeURIComponent(c.case)}`, text: t("case {case}", {case: c.case})}), ` ${({open: t("open"), started: t("started")})[c.state] || c.state}`));
  }
  return td;
}
async function loadCases() {
  try {
    const r = await fetch("/api/inspections");
    cases.clear();
    for (const c of r.ok ? await r.json() : []) {
      for (const dev of c.devices || [c.device]) {  // a case of several cameras shows on each of them
        const k = c.site + "/" + dev;
        cases.set(k, [...(cases.get(k) || []), c]);
      }
    }
    render();
  } catch (err) { /* inspections not configured: the rest of the page goes on */ }
}
function trustCell(d) {  // officer trust version; older than the newest any device reports: flagged
  const tv = d.trust;
  if (!tv || tv.version === null) return el("td", {class: "muted trust"}, "—");
  const newest = Math.max(...[...devices.values()].map((x) => (x.trust && x.trust.version) || 0));
  const old = tv.version < newest;
  const td = el("td", {class: "trust" + (old ? " old" : ""), "data-version": String(tv.version), title: tv.last_refusal || ""},
    tv.version ? `v${tv.version}` : t("hand-made"));
  if (old) td.append(" ", el("span", {class: "alert-chip"}, t("old version")));
  if (tv.last_refusal) td.append(" ", el("span", {class: "alert-chip"}, t("bundle refused")));
  return td;
}

function indexCell(d) {
  const f = indexed.get(d.site + "/" + d.device);
  if (!hasIndex) return el("td", {class: "muted idx"}, t("no index"));
  if (!f) return el("td", {class: "muted idx"}, t("nothing indexed"));
  const q = new URLSearchParams({device: d.device});
  return el("td", {class: "idx", "data-records": String(f.records)},
    el("a", {href: "/search?" + q}, t("{n} records", {n: f.records})), " · " + t("newest #{seq} · last capture {at} UTC", {seq: f.max_seq, at: f.last.replace("T", " ").slice(0, 19)}));
}

function render() {
  body.replaceChildren();
  const keys = new Set([...devices.keys(), ...indexed.keys()]);
  if (!keys.size) body.append(el("tr", {class: "empty"}, el("td", {colspan: 11, class: "muted"}, t("No device has reported yet."))));
  for (const key of [...keys].sort()) {
    const f = indexed.get(key);
    body.append(row(devices.get(key) || {site: f.site, device: f.device, online: null, alerts: []}));
  }
}

async function loadIndex() {  // the index changes with every record: a light poll, not a push
  try {
    const r = await fetch("/api/devices");
    const j = await r.json();
    hasIndex = Array.isArray(j.index);
    indexed.clear();
    for (const f of j.index || []) indexed.set(f.site + "/" + f.device, f);
    document.getElementById("index-note").textContent = hasIndex ? t("Index figures: from the customs index (records the ingest stored).") : "";
    render();
  } catch (err) { /* the live part of the page goes on */ }
}

function connect() {
  const ws = new WebSocket(wsUrl("/ws/fleet"));
  const conn = document.getElementById("conn");
  ws.onopen = () => { conn.textContent = t("live updates"); };
  ws.onclose = () => { conn.textContent = t("disconnected — retrying"); setTimeout(connect, 2000); };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.t === "snapshot") { devices.clear(); for (const d of m.devices) devices.set(d.site + "/" + d.device, d); }
    else if (m.t === "device") devices.set(m.device.site + "/" + m.device.device, m.device);
    render();
  };
}
setInterval(() => document.querySelectorAll("td.seen").forEach((td) => { td.textContent = ago(Number(td.dataset.seen) || 0); }), 1000);
i18n().then(() => vocab().catch(() => null)).then(() => {
  connect();
  loadIndex();
  setInterval(loadIndex, 10000);
  loadCases();
  setInterval(loadCases, 10000);
});

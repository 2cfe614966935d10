// Fleet page: a snapshot, then one message per changed device over /ws/fleet.
"use strict";
const devices = new Map();
const body = document.querySelector("#fleet tbody");

function row(d) {
  const state = d.online === true ? "online" : d.online === false ? "offline" : "unknown";
  const tr = el("tr", {class: state, "data-device": d.device, "data-site": d.site});
  const st = el("td", {class: "state"}, el("span", {class: "dot"}), state);
  const alerts = el("td", {class: "alerts"});
  for (const a of (d.alerts || []).slice(0, 4)) alerts.append(el("span", {class: "alert-chip", title: a.time || ""}, alertText(a)));
  const self = d.selftest ? (d.selftest.ok === false ? "FAILED " : d.selftest.ok ? "passed " : "") + (d.selftest.time || "") : "—";
  const link = el("a", {class: "btn", href: `/live/${encodeURIComponent(d.site)}/${encodeURIComponent(d.device)}`}, "Watch live");
  tr.append(st, el("td", {text: d.site}), el("td", {text: d.device}),
    el("td", {class: "seen", "data-seen": d.last_seen || ""}, ago(d.last_seen)),
    el("td", {text: gpsText(d.gps)}), el("td", {text: clockText(d.clock)}), el("td", {text: self}), alerts,
    el("td", {}, state === "offline" ? el("span", {class: "muted"}, "offline") : link));
  return tr;
}

function render() {
  body.replaceChildren();
  if (!devices.size) body.append(el("tr", {class: "empty"}, el("td", {colspan: 9, class: "muted"}, "No device has reported yet.")));
  for (const key of [...devices.keys()].sort()) body.append(row(devices.get(key)));
}

function connect() {
  const ws = new WebSocket(wsUrl("/ws/fleet"));
  const conn = document.getElementById("conn");
  ws.onopen = () => { conn.textContent = "live updates"; };
  ws.onclose = () => { conn.textContent = "disconnected — retrying"; setTimeout(connect, 2000); };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.t === "snapshot") { devices.clear(); for (const d of m.devices) devices.set(d.site + "/" + d.device, d); }
    else if (m.t === "device") devices.set(m.device.site + "/" + m.device.device, m.device);
    render();
  };
}
setInterval(() => document.querySelectorAll("td.seen").forEach((td) => { td.textContent = ago(Number(td.dataset.seen) || 0); }), 1000);
connect();

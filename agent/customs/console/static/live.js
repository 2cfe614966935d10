// Live page: verified fMP4 fragments from /ws/live/... into Media Source Extensions.
// The server verifies every fragment before sending it; this page only shows what it was told was checked,
// keeps to the live edge (jumps forward when it falls behind), and measures when each frame is presented.
"use strict";
const [, , site, device] = location.pathname.split("/").map(decodeURIComponent);
const video = document.getElementById("video");
const stats = window.consoleStats = {arrivals: [], verified: 0, refused: 0, waiting: 0, presented: 0, jumps: 0, bytes: 0,
  latencies: [], lastLatencyMs: null, lastReason: null, ended: null, started: null, behindS: 0};
const frameWall = new Map();  // media time (us, rounded to ms) -> capture wall time (ms)
let mediaSource = null, sourceBuffer = null, codec = null;
const pending = [];
let lastRefusedAt = 0;

function showTitle() { document.getElementById("title").textContent = t("Live — {device} @ {site}", {device, site}); }
showTitle();
// ?embed=1: inside the inspection screen, which owns the case's actions (marks and snapshots belong to the case)
const EMBED = new URLSearchParams(location.search).get("embed") === "1";
if (EMBED) document.body.classList.add("embed");
let doubts = [];  // what the device signed that is not trustworthy as evidence (simulated GPS, unsynced clock)

function setBadge(kind, title, why) {
  if (kind === "ok" && doubts.length) { kind = "warn"; title = t("VERIFIED LIVE — CHECK CONDITIONS"); why = `${doubts.join("; ")} · ${why || ""}`; }
  const b = document.getElementById("badge");
  b.className = "badge " + kind;
  document.getElementById("badge-title").textContent = title;
  document.getElementById("badge-why").textContent = why || "";
  document.getElementById("checks-title").textContent = kind === "ok" || kind === "warn" ? t("Checked for the fragment on screen:")
    : kind === "bad" ? t("The last fragment shown had passed:") : "";
}
function showChecks(c) {
  const ul = document.getElementById("checks");
  const age = c.age_ms != null ? t("{n} s ago", {n: (c.age_ms / 1000).toFixed(2)}) : "";
  // c.lines: each check that passed for this fragment, as the console computed it from what it compared
  ul.replaceChildren(...(c.lines || []).map((line) => el("li", {}, line)),
    el("li", {}, `${t("Captured")} ${c.capture_start_us ? new Date(c.capture_start_us / 1000).toISOString().slice(11, 23) + "Z" : "—"} ${age}`),
    el("li", {class: doubt(c, "GPS")}, `${t("GPS (device-signed)")} ${c.gps || "—"}${doubt(c, "GPS") ? " — " + t("SIMULATED") : ""}`),
    el("li", {class: doubt(c, "clock")}, `${t("Clock (device-signed)")} ${c.time_source || "—"}`));
}
// amber, never a green tick, for what the device itself says is doubtful
function doubt(c, what) { return (c.doubts || []).some((d) => d.startsWith(what)) ? "warn" : ""; }
function logEvent(text, cls) {
  const ul = document.getElementById("events");
  if (ul.firstElementChild && ul.firstElementChild.classList.contains("muted")) ul.replaceChildren();
  ul.prepend(el("li", {class: cls || ""}, `${new Date().toISOString().slice(11, 19)} ${text}`));
  while (ul.children.length > 50) ul.lastChild.remove();
}

function appendNext() {
  if (!sourceBuffer || sourceBuffer.updating || !pending.length) return;
  try { sourceBuffer.appendBuffer(pending.shift()); }
  catch (e) { logEvent(`${t("player")}: ${e.name}`, "bad"); trim(true); }
}
function trim(force) {
  // keep ~20 s behind the playhead: a 25-minute session must not fill the browser's memory
  if (!sourceBuffer || sourceBuffer.updating || !video.buffered.length) return;
  const start = video.buffered.start(0);
  if (force || video.currentTime - start > 30) sourceBuffer.remove(start, Math.max(start, video.currentTime - 20));
}
function onInit(meta, data) {
  if (!mediaSource) {
    codec = `video/mp4; codecs="${meta.codec}"`;
    mediaSource = new MediaSource();
    video.src = URL.createObjectURL(mediaSource);
    mediaSource.addEventListener("sourceopen", () => {
      sourceBuffer = mediaSource.addSourceBuffer(codec);
      sourceBuffer.mode = "segments";
      sourceBuffer.addEventListener("updateend", () => { appendNext(); });
      appendNext();
    }, {once: true});
  }
  pending.push(data);
}
function onMedia(meta, data) {
  // capture of the fragment's last frame -> verified and in this tab (before decoding)
  stats.arrivals.push(Date.now() - meta.frames[meta.frames.length - 1][1] / 1000);
  if (stats.arrivals.length > 20000) stats.arrivals.splice(0, 10000);
  for (const [pts, wall] of meta.frames) frameWall.set(Math.round(pts / 1000), wall / 1000);
  if (frameWall.size > 2000) { const it = frameWall.keys(); for (let i = 0; i < 500; i++) frameWall.delete(it.next().value); }
  pending.push(data);
  appendNext();
  showView(meta.view);
}

// Live edge: MSE players drift seconds behind over long sessions unless told otherwise. Play slightly faster
// while more than TARGET_S is buffered ahead, and jump when more than JUMP_S is.
const TARGET_S = 0.2, JUMP_S = 1.5;
// JPEG fallback (a device without a second encoder): each verified frame replaces the picture.
let jpegImg = null;
function onJpeg(meta, data) {
  if (!jpegImg) {
    jpegImg = el("img", {alt: t("verified live JPEG frame"), style: "display:block;width:100%"});
    video.replaceWith(jpegImg);
  }
  const url = URL.createObjectURL(new Blob([data], {type: "image/jpeg"}));
  jpegImg.onload = () => {
    URL.revokeObjectURL(url);
    stats.presented += 1;
    stats.lastLatencyMs = Date.now() - meta.capture_wall_us / 1000;
    stats.latencies.push(stats.lastLatencyMs);
  };
  jpegImg.src = url;
  showView(meta.view);
}

function keepToEdge() {
  if (!video.buffered.length) return;
  const end = video.buffered.end(video.buffered.length - 1);
  stats.behindS = end - video.currentTime;
  if (video.paused && end > 0) {
    if (video.currentTime < video.buffered.start(0)) video.currentTime = Math.max(video.buffered.start(0), end - TARGET_S);
    video.play().catch(() => {});
  }
  if (stats.behindS > JUMP_S) { video.currentTime = end - TARGET_S; stats.jumps += 1; }
  else video.playbackRate = stats.behindS > TARGET_S + 0.1 ? 1.1 : 1.0;
  document.getElementById("edge").textContent = stats.behindS < 1.0 ? t("LIVE ({n} ms buffered)", {n: Math.round(stats.behindS * 1000)}) : t("behind {n} s", {n: stats.behindS.toFixed(1)});
  trim(false);
}
setInterval(keepToEdge, 250);

function onFrame(now, md) {
  stats.presented += 1;
  const ms = Math.round(md.mediaTime * 1000);
  const wall = frameWall.get(ms) ?? frameWall.get(ms - 1) ?? frameWall.get(ms + 1);
  if (wall !== undefined) {
    const lat = performance.timeOrigin + md.expectedDisplayTime - wall;
    stats.lastLatencyMs = lat;
    stats.latencies.push(lat);
    if (stats.latencies.length > 20000) stats.latencies.splice(0, 10000);
  }
  video.requestVideoFrameCallback(onFrame);
}
video.requestVideoFrameCallback(onFrame);

setInterval(() => {
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : {totalVideoFrames: 0, droppedVideoFrames: 0};
  stats.decoded = q.totalVideoFrames;
  const lat = stats.lastLatencyMs != null ? t("{n} ms capture→screen", {n: Math.round(stats.lastLatencyMs)}) : "";
  document.getElementById("stats").textContent = `${video.videoWidth}x${video.videoHeight} · ` +
    t("{v} fragments verified · {r} refused · {d} frames decoded, {x} dropped", {v: stats.verified, r: stats.refused, d: q.totalVideoFrames, x: q.droppedVideoFrames}) + ` · ${lat} · ` +
    `${(stats.bytes * 8 / 1e6 / Math.max(1, (Date.now() - (stats.started || Date.now())) / 1000)).toFixed(2)} Mbit/s`;
  if (stats.refused && Date.now() - lastRefusedAt > 8000 && stats.verified && !stats.ended) {
    setBadge("ok", t("VERIFIED LIVE"), t("{n} fragment(s) refused earlier, never shown", {n: stats.refused}));
  }
}, 1000);

const alertsBox = document.getElementById("alerts");
let RECORD_EVENTS = [];  // events that only record something (a zoom, a notice): logged, never a red alert
function showAlert(a) {
  if (RECORD_EVENTS.includes(a.type)) { logEvent(`${alertText(a)} — ${t("signed by the device")}`); return; }
  const d = el("div", {}, `⚠ ${alertText(a)} — ${t("signed by the device")}${a.time ? " " + a.time.slice(11, 19) : ""}`);
  alertsBox.prepend(d);
  setTimeout(() => d.remove(), 20000);
  logEvent(`${t("alert")}: ${alertText(a)}`, "bad");
}

// Words first (the badge and log are written as messages arrive), then the session.
let ws = null;
i18n().then(() => vocab().catch(() => null)).then((v) => {
  if (v) { RECORD_EVENTS = v.record_events || []; ZOOM_MAX = v.zoom_max || ZOOM_MAX; }
  showTitle();
  ws = new WebSocket(wsUrl(`/ws/live/${encodeURIComponent(site)}/${encodeURIComponent(device)}`));
  ws.binaryType = "arraybuffer";
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") {
      const view = new DataView(ev.data);
      const n = view.getUint32(0);
      const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(ev.data, 4, n)));
      const data = new Uint8Array(ev.data, 4 + n);
      stats.verified += 1;
      stats.bytes += meta.bytes || data.length;
      if (meta.t === "init") onInit(meta, data); else if (meta.t === "jpeg") onJpeg(meta, data); else onMedia(meta, data);
      if (meta.checks && Array.isArray(meta.checks.doubts)) doubts = meta.checks.doubts;
      showChecks(meta.checks);
      const what = meta.t === "jpeg" ? `${meta.width}x${meta.height} ` + t("JPEG frames (device has no H.264 live stream)")
        : `${meta.width}x${meta.height} H.264, ${meta.bitrate_kbps || "?"} kbit/s`;
      if (Date.now() - lastRefusedAt > 8000) setBadge("ok", t("VERIFIED LIVE"), what);
      return;
    }
    const m = JSON.parse(ev.data);
    if (m.t === "started") {
      stats.started = Date.now();
      stats.session = m.session;
      document.getElementById("session").textContent = t("session {s}… · officer {o} · {subject}", {s: m.session.slice(0, 8), o: m.officer, subject: m.subject});
      setBadge("wait", t("Waiting for the first verified fragment"), m.chain_checked ? t("device certificate chains to the device CA") : t("no device CA configured"));
    } else if (m.t === "refused") {
      stats.refused = m.refused; stats.lastReason = m.reason; lastRefusedAt = Date.now();
      setBadge("bad", t("FRAGMENT REFUSED — NOT SHOWN"), m.reason);
      logEvent(`${t("refused")}: ${m.reason}`, "bad");
    } else if (m.t === "wait") {
      stats.waiting += 1;
    } else if (m.t === "alert") {
      showAlert(m.alert);
    } else if (m.t === "end") {
      stats.ended = m.reason;
      setBadge("bad", t("STREAM ENDED"), t("device ended the session: {why}", {why: m.reason}) + (m.sealed ? ", " + t("sealed as record {seq}", {seq: m.sealed.seq}) : ""));
    } else if (m.t === "stalled") {
      setBadge("bad", t("NOT LIVE — STREAM STALLED"), m.message);
      logEvent(`${t("stalled")}: ${m.message}`, "bad");
    } else if (m.t === "resumed") {
      setBadge("wait", t("Stream resumed"), t("waiting for the next verified fragment"));
      logEvent(t("stream resumed"));
    } else if (m.t === "error") {
      stats.ended = m.message;
      setBadge("bad", t("NO LIVE VIEW"), m.message);
    }
  };
  ws.onclose = () => { if (!stats.ended) { stats.ended = "connection closed"; setBadge("bad", t("DISCONNECTED"), t("the console connection closed")); } };
});
setInterval(() => { if (ws && ws.readyState === 1) ws.send(JSON.stringify({t: "keepalive"})); }, 3000);
window.addEventListener("pagehide", () => { try { if (ws) ws.send(JSON.stringify({t: "stop"})); } catch (e) { /* closing anyway */ } });

// While a case is started on this device, marks and snapshots go through the case (its timeline and report).
let caseOpen = null;
fetch("/api/inspections").then((r) => (r.ok ? r.json() : [])).then((rows) => {
  caseOpen = rows.find((r) => r.state === "started" && (r.devices || [r.device]).includes(device) && r.site === site) || null;
  if (caseOpen) document.getElementById("case-note").textContent = t("Actions are recorded in case {case}.", {case: caseOpen.case});
}).catch(() => {});
async function action(path, body) {
  const out = document.getElementById("actions");
  const url = caseOpen ? `/api/inspection/${path}?case=${encodeURIComponent(caseOpen.case)}`
    : `/api/devices/${encodeURIComponent(site)}/${encodeURIComponent(device)}/${path}`;
  const sent = caseOpen ? {...(body || {}), device} : (body || {});  // in a case: sealed by this page's device
  const r = await fetch(url, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(sent)});
  const j = await r.json().catch(() => ({}));
  const seq = caseOpen ? j.seq : (j.result || {}).seq;
  const what = path === "mark" ? t("mark") : t("snapshot");  // the command's name, as the officer knows it
  const text = r.ok ? `${what}: ${t("sealed as record {seq}", {seq})}${caseOpen ? " " + t("in case {case}", {case: caseOpen.case}) : " (" + j.verified + ")"}`
    : `${what}: ${t("failed")}: ${typeof j.detail === "string" ? j.detail : r.statusText}`;
  out.prepend(el("li", {class: r.ok ? "" : "bad"}, text));
  return j;
}
document.getElementById("snapshot").onclick = () => action("snapshot", caseOpen ? {} : undefined);
document.getElementById("mark").onclick = () => {
  const note = document.getElementById("note").value.trim();
  if (note) action("mark", {note}).then(() => { document.getElementById("note").value = ""; });
};

// Digital zoom. What is drawn comes from the device: each verified fragment's signed header says which region of
// the full view it shows ("zoom 3.0x" and a mini-map rectangle). + / − / 1× and a click on the zoomed picture
// (re-centre there) send the signed view.zoom through the console; the device refuses it without a live view
// and seals every change. The region is sent as a centre and a factor, kept inside the full view here as there.
let ZOOM_MAX = 8;
const ZOOM_STEPS = [1, 1.5, 2, 3, 4, 6, 8];
let shownView = null;
let zoomBusy = false;
function showView(v) {
  shownView = v || null;
  stats.zoom = v ? v.factor : 1;
  stats.view = shownView;
  const box = document.getElementById("zoom-info");
  box.hidden = !v;
  if (!v) return;
  document.getElementById("zoom-label").textContent = t("zoom {f}x", {f: v.factor.toFixed(1)});
  const r = document.getElementById("zoom-rect").style;
  r.left = `${(v.x * 100).toFixed(2)}%`; r.top = `${(v.y * 100).toFixed(2)}%`;
  r.width = `${(v.w * 100).toFixed(2)}%`; r.height = `${(v.h * 100).toFixed(2)}%`;
}
function inside(c, f) { const half = 0.5 / f; return Math.min(1 - half, Math.max(half, c)); }
async function sendZoom(body) {
  if (zoomBusy) return null;
  zoomBusy = true;
  for (const b of document.querySelectorAll("#zoom-ctl button")) b.disabled = true;
  try {
    const r = await fetch(`/api/devices/${encodeURIComponent(site)}/${encodeURIComponent(device)}/zoom`,
      {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    const j = await r.json().catch(() => ({}));
    const res = j.result || {};
    const text = !r.ok ? t("zoom refused: {why}", {why: typeof j.detail === "string" ? j.detail : r.statusText})
      : res.changed ? t("zoom {f}x sealed as record {seq}", {f: Number(res.view.factor).toFixed(1), seq: res.seq})
      : t("zoom unchanged");
    document.getElementById("actions").prepend(el("li", {class: r.ok ? "" : "bad"}, text));
    logEvent(text, r.ok ? "" : "bad");
    stats.zoomReplies = (stats.zoomReplies || 0) + 1;
    return j;
  } finally {
    zoomBusy = false;
    for (const b of document.querySelectorAll("#zoom-ctl button")) b.disabled = false;
  }
}
function zoomTo(f, cx, cy) {
  if (f <= 1.001) return sendZoom({reset: true});
  return sendZoom({cx: inside(cx, f), cy: inside(cy, f), factor: f});
}
function zoomStep(dir) {
  const v = shownView || {x: 0, y: 0, w: 1, h: 1, factor: 1};
  const f = v.factor;
  const next = dir > 0 ? (ZOOM_STEPS.find((s) => s > f + 0.01) || ZOOM_MAX)
    : ([...ZOOM_STEPS].reverse().find((s) => s < f - 0.01) || 1);
  return zoomTo(Math.min(next, ZOOM_MAX), v.x + v.w / 2, v.y + v.h / 2);
}
document.getElementById("zoom-in").onclick = () => zoomStep(1);
document.getElementById("zoom-out").onclick = () => zoomStep(-1);
document.getElementById("zoom-reset").onclick = () => sendZoom({reset: true});
document.querySelector(".stage").addEventListener("click", (ev) => {
  if (!shownView || ev.target.closest("#zoom-ctl") || ev.target.closest("#zoom-info")) return;
  const rect = (jpegImg || video).getBoundingClientRect();
  const px = (ev.clientX - rect.left) / rect.width, py = (ev.clientY - rect.top) / rect.height;
  if (px < 0 || px > 1 || py < 0 || py > 1) return;
  const v = shownView;
  zoomTo(v.factor, v.x + px * v.w, v.y + py * v.h);
});

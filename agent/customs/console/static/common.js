// Shared helpers for the console pages (no framework, no build step).
"use strict";
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const kid of kids) e.append(kid);
  return e;
}
function ago(epochS) {
  if (!epochS) return "never";
  const s = Math.max(0, Date.now() / 1000 - epochS);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}
function gpsText(g) {
  if (!g) return "—";
  if (!g.fix) return `no fix (${g.status || "unknown"})`;
  return `${g.lat.toFixed(5)}, ${g.lon.toFixed(5)} ${g.mode || ""}${g.hdop != null ? " hdop " + g.hdop : ""}`;
}
function clockText(c) {
  if (!c) return "—";
  const err = c.est_error_s != null ? ` ±${c.est_error_s < 1 ? Math.round(c.est_error_s * 1000) + " ms" : c.est_error_s + " s"}` : "";
  return c.synced ? `${c.source || "?"} synced${err}` : `NOT synced (source: ${c.source || "?"})`;
}
function alertText(a) { return `${a.type || a.kind}${a.phase ? " (" + a.phase + ")" : ""}`; }
let vocabLoad = null;
// The one vocabulary (record kinds, event types, labels, id patterns), from agent/core/vocab.py via /api/vocab.
function vocab() {
  vocabLoad = vocabLoad || fetch("/api/vocab").then((r) => {
    if (!r.ok) throw new Error(`vocabulary: ${r.status} ${r.statusText}`);
    return r.json();
  });
  return vocabLoad;
}
function wsUrl(path) { return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path; }

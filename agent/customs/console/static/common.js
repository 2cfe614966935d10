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
// Words: the customs catalogue (agent/customs/i18n) in the officer's language, from /api/i18n. Static text is
// marked data-i18n (its text is the message id) or data-i18n-attr="placeholder title" (those attributes);
// script text goes through t("message {name}", {name: value}). Values are inserted as text, never as markup.
let I18N = {lang: "en", langs: ["en"], messages: {}};
let i18nLoad = null;
function t(msgid, params) {
  const s = I18N.messages[msgid] || msgid;
  return params ? s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : s;
}
function applyI18n(root) {
  const norm = (s) => s.split(/\s+/).filter(Boolean).join(" ");
  for (const e of root.querySelectorAll("[data-i18n]")) {
    if (e.dataset.i18nId === undefined) e.dataset.i18nId = norm(e.textContent);
    e.textContent = t(e.dataset.i18nId);
  }
  for (const e of root.querySelectorAll("[data-i18n-attr]")) {
    for (const a of e.dataset.i18nAttr.split(/\s+/).filter(Boolean)) {
      const key = `i18n${a[0].toUpperCase()}${a.slice(1)}Id`;
      if (e.dataset[key] === undefined) e.dataset[key] = norm(e.getAttribute(a) || "");
      if (e.dataset[key]) e.setAttribute(a, t(e.dataset[key]));
    }
  }
}
// The language switch in the page's header: the choice is a cookie (a year), sent with every request.
function langSwitch() {
  const head = document.querySelector("header");
  if (!head || document.getElementById("lang-switch")) return;
  const names = {zh: "中文", en: "English"};
  const box = el("span", {id: "lang-switch", class: "lang-switch"});
  for (const l of I18N.langs) {
    const b = el("button", {type: "button", class: "lang" + (l === I18N.lang ? " on" : ""), "data-lang": l, lang: l === "zh" ? "zh-Hans" : "en", text: names[l] || l});
    b.onclick = () => { document.cookie = `lang=${l}; path=/; max-age=31536000; SameSite=Strict`; location.reload(); };
    box.append(b);
  }
  head.append(box);
}
function i18n() {
  i18nLoad = i18nLoad || fetch("/api/i18n").then((r) => (r.ok ? r.json() : I18N)).catch(() => I18N).then((d) => {
    I18N = d;
    document.documentElement.lang = d.lang === "zh" ? "zh-Hans" : "en";
    applyI18n(document);
    langSwitch();
    return d;
  });
  return i18nLoad;
}
function ago(epochS) {
  if (!epochS) return t("never");
  const s = Math.max(0, Date.now() / 1000 - epochS);
  if (s < 60) return t("{n} s ago", {n: Math.round(s)});
  if (s < 3600) return t("{n} min ago", {n: Math.round(s / 60)});
  return t("{n} h ago", {n: (s / 3600).toFixed(1)});
}
function gpsText(g) {
  if (!g) return "—";
  if (!g.fix) return t("no fix ({status})", {status: g.status || t("unknown")});
  return `${g.lat.toFixed(5)}, ${g.lon.toFixed(5)} ${g.mode || ""}${g.hdop != null ? " hdop " + g.hdop : ""}`;
}
function clockText(c) {
  if (!c) return "—";
  const err = c.est_error_s != null ? ` ±${c.est_error_s < 1 ? Math.round(c.est_error_s * 1000) + " ms" : c.est_error_s + " s"}` : "";
  return c.synced ? t("{source} synced", {source: c.source || "?"}) + err : t("NOT synced (source: {source})", {source: c.source || "?"});
}
// An alert's words: the vocabulary's label of its type (translated) when it has one, else the type as sent.
let EVENT_LABELS = {};
function alertText(a) {
  const type = a.type || a.kind;
  const words = EVENT_LABELS[type] ? t(EVENT_LABELS[type]) : type;
  return `${words}${a.phase ? " (" + (a.phase === "end" ? t("end") : a.phase === "onset" ? t("onset") : a.phase) + ")" : ""}`;
}
let vocabLoad = null;
// The one vocabulary (record kinds, event types, labels, id patterns), from agent/core/vocab.py via /api/vocab.
function vocab() {
  vocabLoad = vocabLoad || fetch("/api/vocab").then((r) => {
    if (!r.ok) throw new Error(`vocabulary: ${r.status} ${r.statusText}`);
    return r.json();
  }).then((v) => { EVENT_LABELS = v.event_labels || {}; return v; });
  return vocabLoad;
}
function wsUrl(path) { return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path; }

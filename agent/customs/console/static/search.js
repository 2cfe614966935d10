// Search page: filters in the URL (a shareable link), keyset pages from /api/search, a detail panel per record.
"use strict";
const FILTERS = ["device", "site", "since", "until", "kind", "event_type", "case"];
const form = document.getElementById("filters");
const tbody = document.querySelector("#results tbody");
const more = document.getElementById("btn-more");
window.searchStats = {rows: 0, count: null, pages: 0, loading: false, error: null, detail: null};
let next = null;
let current = new URLSearchParams();
let selected = null;

function showError(text) {
  const e = document.getElementById("error");
  e.hidden = !text;
  e.textContent = text || "";
  window.searchStats.error = text || null;
}

async function getJson(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({detail: `${r.status} ${r.statusText}`}));
  if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : `${r.status} ${r.statusText}`);
  return body;
}

function option(select, value, label) {
  if (![...select.options].some((o) => o.value === value)) select.append(el("option", {value}, label || value));
}

function inputTime(v, endOfDay) {  // what the URL holds -> what a datetime-local input shows (UTC)
  if (!v) return "";
  if (/^\d{4}-\d\d-\d\d$/.test(v)) return v + (endOfDay ? "T23:59:59" : "T00:00:00");
  const d = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(v) ? v : v + "Z");
  return isNaN(d) ? "" : d.toISOString().slice(0, 19);
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  for (const name of FILTERS) {
    const field = form.elements[name];
    const v = p.get(name) || "";
    if (field.tagName === "SELECT" && v) option(field, v);
    field.value = field.type === "datetime-local" ? inputTime(v, name === "until") : v;
  }
  return p;
}

function params() {
  const p = new URLSearchParams();
  for (const name of FILTERS) {
    const v = form.elements[name].value.trim();
    if (v) p.set(name, v);
  }
  return p;
}

function size(n) { return n == null ? "" : n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`; }
function gps(r) { return r.lat == null || r.lon == null ? t("no fix") : `${r.lat.toFixed(5)}, ${r.lon.toFixed(5)}`; }

function row(r) {
  const tr = el("tr", {"data-item": r.item, "data-device": r.device, "data-seq": String(r.seq)});
  const media = r.media ? el("td", {}, `${r.media.name} (${size(r.media.size)}) `,
    el("span", {class: r.media.stored ? "stored" : "pending"}, r.media.stored ? t("stored") : t("not yet received"))) : el("td", {class: "muted"}, "—");
  tr.append(el("td", {text: r.captured.replace("T", " ").replace(/\.000000Z$|Z$/, "")}), el("td", {text: r.device}),
    el("td", {text: r.site}), el("td", {text: String(r.seq)}), el("td", {text: r.kind}),
    el("td", {text: r.event_type || ""}), el("td", {text: r.case || ""}), el("td", {text: gps(r)}), media,
    el("td", {class: "mono", title: r.item}, r.item.slice(0, 12) + "…"));
  tr.addEventListener("click", () => detail(r, tr));
  return tr;
}

function counts() {
  const s = window.searchStats;
  document.getElementById("counts").textContent = s.count == null ? t("{n} shown", {n: s.rows}) :
    (s.count === 1 ? t("{n} of {count} record shown, newest first", {n: s.rows, count: `${s.count}${s.capped ? "+" : ""}`})
      : t("{n} of {count} records shown, newest first", {n: s.rows, count: `${s.count}${s.capped ? "+" : ""}`}));
}

async function search(p, append) {
  window.searchStats.loading = true;
  showError(null);
  try {
    const q = new URLSearchParams(p);
    if (append && next) q.set("after", next);
    const page = await getJson("/api/search?" + q);
    if (!append) { tbody.replaceChildren(); window.searchStats.rows = 0; window.searchStats.count = page.count; window.searchStats.capped = page.count_capped; window.searchStats.pages = 0; }
    for (const r of page.rows) tbody.append(row(r));
    if (!append && !page.rows.length) tbody.append(el("tr", {class: "empty"}, el("td", {colspan: 10, class: "muted"}, t("No record matches."))));
    window.searchStats.rows += page.rows.length;
    window.searchStats.pages += 1;
    next = page.next;
    more.hidden = !next;
    counts();
  } catch (err) {
    showError(err.message);
  } finally {
    window.searchStats.loading = false;
  }
}

async function detail(r, tr) {
  if (selected) selected.classList.remove("selected");
  selected = tr || null;
  if (tr) tr.classList.add("selected");
  try {
    const d = await getJson(`/api/search/item/${encodeURIComponent(r.device)}/${encodeURIComponent(r.item)}`);
    const rec = d.record;
    document.getElementById("detail-title").textContent = `${rec.device_id} #${rec.seq} — ${rec.kind}`;
    const fields = [[t("Device"), rec.device_id], [t("Site"), rec.site_id], [t("Sequence"), rec.seq], [t("Kind"), rec.kind],
      [t("Captured"), d.row.captured], [t("Event type"), d.row.event_type], [t("Case"), d.row.case], [t("GPS"), gps(d.row)],
      [t("Media"), d.row.media ? `${d.row.media.name}, ${size(d.row.media.size)}, ${d.row.media.stored ? t("stored") : t("not yet received")}` : t("none")],
      [t("Media SHA-256"), d.row.media ? d.row.media.sha256 : ""], [t("Record hash"), d.row.item], [t("Previous"), rec.prev],
      [t("Key id"), rec.key_id], [t("Extra"), rec.extra && Object.keys(rec.extra).length ? JSON.stringify(rec.extra) : ""]];
    const body = document.querySelector("#detail-fields tbody");
    body.replaceChildren(...fields.filter(([, v]) => v !== undefined && v !== null && v !== "")
      .map(([k, v]) => el("tr", {}, el("th", {text: k}), el("td", {text: String(v)}))));
    const pic = document.getElementById("detail-picture");
    pic.replaceChildren();
    if (rec.kind === "still" && d.row.media && d.row.media.stored) {  // the console finds it by device, seq and hash
      const src = `/api/still/${encodeURIComponent(rec.device_id)}/${encodeURIComponent(rec.seq)}?item=${encodeURIComponent(d.row.item)}`;
      const img = el("img", {id: "detail-img", src, alt: t("still seq {seq}", {seq: rec.seq})});
      img.onerror = () => pic.replaceChildren(el("p", {class: "muted", text: t("picture not available (no evidence folder configured, or not received)")}));
      img.onclick = () => Viewer.open(src, [[t("Device"), rec.device_id], [t("Seq"), rec.seq], [t("Label"), (rec.extra || {}).label],
        [t("Captured"), d.row.captured], [t("GPS (device-signed)"), gpsCaption(rec.gps)], [t("Case"), d.row.case]]);
      pic.append(img);
    }
    document.getElementById("verify-hint").textContent = d.verify;
    findingList(document.getElementById("detail-findings"), d.findings, t("No findings for this device."));
    document.getElementById("detail-record").textContent = JSON.stringify(JSON.parse(d.canonical), null, 2);
    document.getElementById("detail").hidden = false;
    document.querySelector(".search-cols").classList.add("with-detail");
    window.searchStats.detail = {device: rec.device_id, seq: rec.seq, item: d.row.item};
  } catch (err) {
    showError(err.message);
  }
}

function findingList(ul, list, empty) {
  ul.replaceChildren(...list.map((f) => {
    const li = el("li", {class: "kind-" + f.kind}, el("b", {}, ({fork: t("fork"), chain: t("chain"), refused: t("refused")})[f.kind] || f.kind), ` ${f.device}${f.seq != null ? " #" + f.seq : ""}: ${f.detail} `);
    if (f.kind !== "fork" && f.item && /^[0-9a-f]{64}$/.test(f.item)) {  // a stored record: open it (a fork's record is kept aside in forks/, not in the index)
      const a = el("a", {href: "#", class: "open-record"}, t("open record"));
      a.addEventListener("click", (ev) => { ev.preventDefault(); detail({device: f.device, item: f.item}, null); });
      li.append(a);
    }
    return li;
  }));
  if (!list.length) ul.append(el("li", {class: "muted"}, empty));
}

async function findings(p) {
  const device = p.get("device");
  document.getElementById("findings-scope").textContent = device ? `— ${device}` : "— " + t("all devices");
  try {
    const f = await getJson("/api/search/findings" + (device ? "?device=" + encodeURIComponent(device) : ""));
    findingList(document.getElementById("findings"), f.findings, t("None kept."));
  } catch (err) {
    showError(err.message);
  }
}

async function filterLists() {
  try {
    const v = await vocab();
    for (const k of v.record_kinds) option(form.elements.kind, k);
    document.getElementById("event-types").replaceChildren(...v.event_types.map((t) => el("option", {value: t})));
    const d = await getJson("/api/search/devices");
    for (const dev of d.devices) option(form.elements.device, dev.device, `${dev.device} (${dev.records})`);
    for (const site of d.sites) option(form.elements.site, site);
    document.getElementById("status").textContent = t("{n} devices in the index", {n: d.devices.length});
  } catch (err) {
    showError(err.message);
  }
}

function run(p) {
  current = p;
  document.getElementById("detail").hidden = true;
  document.querySelector(".search-cols").classList.remove("with-detail");
  window.searchStats.detail = null;
  search(p, false);
  findings(p);
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const p = params();
  history.pushState(null, "", p.toString() ? "?" + p : location.pathname);
  run(p);
});
document.getElementById("btn-clear").addEventListener("click", () => {
  form.reset();
  history.pushState(null, "", location.pathname);
  run(new URLSearchParams());
});
more.addEventListener("click", () => search(current, true));
window.addEventListener("popstate", () => run(fromUrl()));
i18n().then(filterLists).then(() => run(fromUrl()));

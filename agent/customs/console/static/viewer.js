// Still viewer: one picture full size in a dialog, with zoom (buttons, wheel, keys) and a caption of text only.
// The picture's address is built by the caller from a validated case and seq (or device and record); the console
// finds the file in the evidence store itself. Every caption part is a device or officer string: textContent only.
"use strict";
const Viewer = (() => {
  let dlg = null, img = null, box = null, cap = null, zoomOut = null, sizeOut = null, scale = 1, fit = true;

  function build() {
    dlg = el("dialog", {id: "viewer", class: "viewer", "aria-label": t("Still viewer")});
    img = el("img", {id: "viewer-img", alt: t("sealed still, full size")});
    box = el("div", {class: "viewer-box"}, img);
    cap = el("div", {id: "viewer-caption", class: "viewer-caption"});
    zoomOut = el("span", {id: "viewer-zoom", class: "muted"});
    sizeOut = el("span", {id: "viewer-size", class: "muted"});
    const btn = (id, text, fn) => { const b = el("button", {class: "btn", id, type: "button", text}); b.onclick = fn; return b; };
    const bar = el("div", {class: "viewer-bar"}, btn("viewer-fit", t("Fit"), () => setFit()),
      btn("viewer-100", "100 %", () => setScale(1)), btn("viewer-in", "+", () => setScale(scale * 1.25)),
      btn("viewer-out", "−", () => setScale(scale / 1.25)), zoomOut, sizeOut,
      el("a", {id: "viewer-open", class: "btn", target: "_blank", rel: "noopener", text: t("Open original")}),
      btn("viewer-close", t("Close"), () => dlg.close()));
    dlg.append(bar, box, cap);
    box.addEventListener("wheel", (e) => { e.preventDefault(); setScale(scale * (e.deltaY < 0 ? 1.15 : 1 / 1.15)); }, {passive: false});
    dlg.addEventListener("keydown", (e) => {
      if (e.key === "+" || e.key === "=") setScale(scale * 1.25);
      else if (e.key === "-") setScale(scale / 1.25);
      else if (e.key === "0") setFit();
    });
    img.addEventListener("load", () => {  // the picture's own pixels, whatever its record says
      sizeOut.textContent = t("{w} × {h} pixels", {w: img.naturalWidth, h: img.naturalHeight});
      return fit ? setFit() : setScale(scale);
    });
    document.body.append(dlg);
  }
  function setScale(s) {
    fit = false;
    scale = Math.min(8, Math.max(0.05, s));
    img.style.width = `${Math.round(img.naturalWidth * scale)}px`;
    img.style.maxWidth = "none";
    zoomOut.textContent = `${Math.round(scale * 100)} %`;
  }
  function setFit() {
    fit = true;
    if (!img.naturalWidth) return;
    const w = box.clientWidth || img.naturalWidth, h = box.clientHeight || img.naturalHeight;
    setScale(Math.min(w / img.naturalWidth, h / img.naturalHeight));  // small stills are enlarged to read them
    fit = true;
  }
  // caption: a list of [name, value] pairs, each shown as text
  function open(src, caption) {
    if (!dlg) build();
    fit = true; scale = 1;
    img.removeAttribute("style");
    sizeOut.textContent = "";
    img.src = src;
    dlg.querySelector("#viewer-open").href = src;
    cap.replaceChildren(...caption.filter(([, v]) => v != null && v !== "").map(([k, v]) =>
      el("div", {}, el("b", {text: `${k}: `}), el("span", {text: String(v)}))));
    if (!dlg.open) dlg.showModal();
  }
  return {open};
})();

// GPS as sealed, as text; tolerant of any value a device might send (never assumes numbers).
function gpsCaption(g) {
  if (!g || typeof g !== "object") return "—";
  const lat = Number(g.lat), lon = Number(g.lon);
  if (g.fix && g.fix !== "none" && Number.isFinite(lat) && Number.isFinite(lon)) {
    const sim = g.talker === "sim" ? " — " + t("SIMULATED receiver") : "";
    return `${lat.toFixed(6)}, ${lon.toFixed(6)} (${String(g.fix)}${g.hdop != null ? ", hdop " + String(g.hdop) : ""})${sim}`;
  }
  return t("no fix ({status})", {status: String(g.status || t("unknown"))});
}

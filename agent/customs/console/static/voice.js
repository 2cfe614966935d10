// Voice panel of the live page: the site's microphone, verified by the console, decoded with WebCodecs and played
// with WebAudio. The console checks every packet group (device signature, this session's nonce, order, freshness,
// limits) before it reaches this page; the page keeps a short jitter buffer and measures capture-to-play latency.
"use strict";
(() => {
  const [, , site, device] = location.pathname.split("/").map(decodeURIComponent);
  const JITTER_S = 0.06, MAX_AHEAD_S = 0.35;
  const vstats = window.voiceStats = {state: "idle", received: 0, refused: 0, decoded: 0, bytes: 0, latencies: [],
    ended: null, sealed: [], lastReason: null, samples: [], sampleCount: 0, analyserPeakHz: null};
  const panel = document.getElementById("voice-panel");
  if (!panel) return;
  const status = el("p", {class: "muted", id: "voice-status", text: "Voice is off."});
  const startBtn = el("button", {class: "btn", id: "voice-start", text: "Start voice (hear the site)"});
  const muteBtn = el("button", {class: "btn", id: "voice-mute", text: "Mute", disabled: ""});
  const stopBtn = el("button", {class: "btn", id: "voice-stop", text: "End voice", disabled: ""});
  panel.replaceChildren(el("h2", {text: "Voice"}), status, startBtn, muteBtn, stopBtn);

  let ws = null, ctx = null, gain = null, analyser = null, decoder = null, nextTime = 0, muted = false, timer = null;
  const captureOf = new Map();  // decoder timestamp (us) -> capture wall time (ms)

  function say(text) { status.textContent = text; }
  function play(data) {
    const n = data.numberOfFrames;
    const buf = ctx.createBuffer(1, n, data.sampleRate);
    const pcm = new Float32Array(n);
    data.copyTo(pcm, {planeIndex: 0, format: "f32-planar"});
    buf.copyToChannel(pcm, 0);
    // keep the last second of decoded samples for checks (window.voiceStats.samples)
    vstats.samples.push(pcm);
    vstats.sampleCount += n;
    while (vstats.samples.length > Math.ceil(data.sampleRate / n)) vstats.samples.shift();
    const now = ctx.currentTime;
    if (nextTime < now + JITTER_S / 2 || nextTime > now + MAX_AHEAD_S) nextTime = now + JITTER_S;  // stay live
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(gain);
    src.start(nextTime);
    const capMs = captureOf.get(data.timestamp);
    captureOf.delete(data.timestamp);
    if (capMs != null) {
      const outS = (ctx.outputLatency || 0) + (ctx.baseLatency || 0);
      vstats.latencies.push(Date.now() + (nextTime - now + outS) * 1000 - capMs);
      if (vstats.latencies.length > 5000) vstats.latencies.shift();
    }
    nextTime += n / data.sampleRate;
    vstats.decoded += 1;
    data.close();
  }
  function onAudio(buf) {
    const dv = new DataView(buf);
    const hlen = dv.getUint32(0);
    const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, hlen)));
    vstats.received += 1;
    vstats.bytes += meta.bytes || 0;
    let pos = 4 + hlen;
    meta.packets.forEach((size, i) => {
      const ts = meta.capture_wall_us + i * meta.frame_ms * 1000;
      captureOf.set(ts, ts / 1000);
      decoder.decode(new EncodedAudioChunk({type: "key", timestamp: ts, data: new Uint8Array(buf, pos, size)}));
      pos += size;
    });
  }
  function peak() {
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    vstats.analyserPeakHz = best * ctx.sampleRate / analyser.fftSize;
  }
  async function start() {
    if (!("AudioDecoder" in window)) { say("This browser has no WebCodecs AudioDecoder: use Chromium."); return; }
    startBtn.disabled = true;
    ctx = new AudioContext({sampleRate: 48000, latencyHint: "interactive"});
    await ctx.resume();
    gain = ctx.createGain();
    analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    gain.connect(analyser);
    analyser.connect(ctx.destination);
    decoder = new AudioDecoder({output: play, error: (e) => { vstats.lastReason = `decoder: ${e.message}`; }});
    decoder.configure({codec: "opus", sampleRate: 48000, numberOfChannels: 1});
    vstats.state = "starting";
    say("Asking the device for a voice session…");
    ws = new WebSocket(wsUrl(`/ws/voice/${encodeURIComponent(site)}/${encodeURIComponent(device)}`));
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") { onAudio(ev.data); return; }
      const m = JSON.parse(ev.data);
      if (m.t === "voice_started") {
        vstats.state = "on";
        vstats.session = m.session;
        say(`Voice on: session ${m.session.slice(0, 8)}…, Opus ${m.bitrate_kbps} kbit/s; ${m.chain}. Every packet is ` +
            "checked by the console (device signature, this session, order, freshness) before it is played.");
        muteBtn.disabled = false;
        stopBtn.disabled = false;
      } else if (m.t === "refused") {
        vstats.refused = m.refused;
        vstats.lastReason = m.reason;
        say(`Audio refused: ${m.reason}`);
      } else if (m.t === "end") {
        vstats.ended = m.reason;
        vstats.sealed = m.sealed || [];
        vstats.state = "ended";
        say(`Voice ended (${m.reason}); sealed audio records: ${(m.sealed || []).map((s) => "seq " + s.seq).join(", ") || "none"}.`);
      } else if (m.t === "error") {
        vstats.state = "error";
        vstats.lastReason = m.message;
        say(`Voice not available: ${m.message}`);
        startBtn.disabled = false;
      }
    };
    ws.onclose = () => { if (vstats.state === "on" || vstats.state === "starting") { vstats.state = "closed"; say("Voice connection closed."); } };
    timer = setInterval(() => { if (ws.readyState === 1) ws.send(JSON.stringify({t: "keepalive"})); peak(); }, 1000);
  }
  function stop() {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({t: "stop"}));
    stopBtn.disabled = true;
    muteBtn.disabled = true;
    if (timer) clearInterval(timer);
  }
  startBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", stop);
  muteBtn.addEventListener("click", () => {
    muted = !muted;
    gain.gain.value = muted ? 0 : 1;
    muteBtn.textContent = muted ? "Unmute" : "Mute";
  });
  window.addEventListener("pagehide", stop);
})();

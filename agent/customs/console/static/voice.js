// Voice panel of the live page: the site's microphone, verified by the console, decoded with WebCodecs and played
// with WebAudio. The console checks every packet group (device signature, this session's nonce, order, freshness,
// limits) before it reaches this page; the page keeps a short jitter buffer and measures capture-to-play latency.
"use strict";
i18n().then(() => {  // the panel is built in the officer's language
  const [, , site, device] = location.pathname.split("/").map(decodeURIComponent);
  // jitter buffer: a packet group (8 x 20 ms) arrives at once, so up to JITTER_S + 160 ms is scheduled ahead;
  // beyond MAX_AHEAD_S (audio bunched by the network) frames are dropped to get back to the live edge
  const JITTER_S = 0.06, MAX_AHEAD_S = 0.26;
  const vstats = window.voiceStats = {state: "idle", received: 0, refused: 0, decoded: 0, bytes: 0, latencies: [],
    ended: null, sealed: [], lastReason: null, samples: [], sampleCount: 0, analyserPeakHz: null,
    talking: false, talkSent: 0, talkPackets: 0, talkBytes: 0, talkRefused: 0, talkReason: null, micError: null};
  const panel = document.getElementById("voice-panel");
  if (!panel) return;
  const status = el("p", {class: "muted", id: "voice-status", text: t("Voice is off.")});
  const startBtn = el("button", {class: "btn", id: "voice-start", text: t("Start voice (hear the site)")});
  const muteBtn = el("button", {class: "btn", id: "voice-mute", text: t("Mute"), disabled: ""});
  const stopBtn = el("button", {class: "btn", id: "voice-stop", text: t("End voice"), disabled: ""});
  const talkBtn = el("button", {class: "btn", id: "voice-talk", text: t("Hold to talk"), disabled: ""});
  const talkStatus = el("p", {class: "muted", id: "voice-talk-status", text: ""});
  panel.replaceChildren(el("h2", {text: t("Voice")}), status, startBtn, muteBtn, stopBtn, el("p"), talkBtn, talkStatus);

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
    if (nextTime < now + JITTER_S / 2) nextTime = now + JITTER_S;  // an underrun: restart the buffer
    if (nextTime > now + MAX_AHEAD_S) {  // too far behind the live edge: drop this frame
      vstats.dropped = (vstats.dropped || 0) + 1;
      captureOf.delete(data.timestamp);
      data.close();
      return;
    }
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
    if (!("AudioDecoder" in window)) { say(t("This browser has no WebCodecs AudioDecoder: use Chromium.")); return; }
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
    say(t("Asking the device for a voice session…"));
    ws = new WebSocket(wsUrl(`/ws/voice/${encodeURIComponent(site)}/${encodeURIComponent(device)}`));
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") { onAudio(ev.data); return; }
      const m = JSON.parse(ev.data);
      if (m.t === "voice_started") {
        vstats.state = "on";
        vstats.session = m.session;
        say(t("Voice on: session {session}…, Opus {kbps} kbit/s; {chain}. Every packet is checked by the console (device " +
            "signature, this session, order, freshness) before it is played.",
            {session: m.session.slice(0, 8), kbps: m.bitrate_kbps, chain: m.chain}));
        muteBtn.disabled = false;
        stopBtn.disabled = false;
        talkBtn.disabled = false;
        openMic();
      } else if (m.t === "talk_refused") {
        vstats.talkRefused = m.refused;
        vstats.talkReason = m.reason;
        talkStatus.textContent = t("Your audio was refused by the console: {reason}", {reason: m.reason});
      } else if (m.t === "refused") {
        vstats.refused = m.refused;
        vstats.lastReason = m.reason;
        say(t("Audio refused: {reason}", {reason: m.reason}));
      } else if (m.t === "end") {
        vstats.ended = m.reason;
        vstats.sealed = m.sealed || [];
        vstats.state = "ended";
        say(t("Voice ended ({reason}); sealed audio records: {records}.", {reason: m.reason,
          records: (m.sealed || []).map((s) => "seq " + s.seq).join(", ") || t("none")}));
      } else if (m.t === "error") {
        vstats.state = "error";
        vstats.lastReason = m.message;
        say(t("Voice not available: {message}", {message: m.message}));
        startBtn.disabled = false;
      }
    };
    ws.onclose = () => { if (vstats.state === "on" || vstats.state === "starting") { vstats.state = "closed"; say(t("Voice connection closed.")); } };
    timer = setInterval(() => { if (ws.readyState === 1) ws.send(JSON.stringify({t: "keepalive"})); peak(); }, 1000);
  }
  // ---- the officer's voice: microphone (the browser's echo canceller on), Opus by WebCodecs, push-to-talk.
  // Each group of packets goes to the console, which checks it, signs it for this officer and session and sends it
  // to the device; nothing is sent while the button is up.
  const TALK_GROUP = 8, FRAME_MS = 20;  // as the device sends: 8 x 20 ms per signed message, 20 kbit/s Opus
  // capture times: each block fed to the encoder is stamped when it reaches the page (minus its duration); each
  // 20 ms packet takes the stamp of the samples it consumes, in order (the encoder is first in, first out), so a
  // dropped microphone block never skews the times of later packets. One encoder per push-to-talk spurt.
  let encoder = null, batch = [];
  function takeWall(st, samples) {
    if (!st.fifo.length) return Date.now() * 1000;
    const wall = st.fifo[0].wall + st.pos * 1e6 / st.fifo[0].rate;
    let left = samples;
    while (left > 0 && st.fifo.length) {
      const avail = st.fifo[0].n - st.pos;
      if (avail > left) { st.pos += left; left = 0; } else { left -= avail; st.fifo.shift(); st.pos = 0; }
    }
    return wall;
  }
  function newEncoder(rate) {
    const st = {fifo: [], pos: 0, rate};
    const enc = new AudioEncoder({output: (chunk) => onChunk(chunk, st),
      error: (e) => { talkStatus.textContent = `encoder: ${e.message}`; }});
    enc.configure({codec: "opus", sampleRate: rate, numberOfChannels: 1, bitrate: 20000,
      opus: {frameDuration: FRAME_MS * 1000}});
    enc.st = st;
    return enc;
  }
  async function openMic() {
    if (!("AudioEncoder" in window) || !("MediaStreamTrackProcessor" in window)) {
      talkStatus.textContent = t("This browser cannot encode the microphone (WebCodecs): use Chromium."); return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: true, noiseSuppression: true,
        autoGainControl: true, channelCount: 1}});
    } catch (e) {
      vstats.micError = e.message;
      talkStatus.textContent = t("Microphone not available: {message}", {message: e.message}); talkBtn.disabled = true; return;
    }
    const track = stream.getAudioTracks()[0];
    const reader = new MediaStreamTrackProcessor({track}).readable.getReader();
    talkStatus.textContent = t("Microphone ready (echo cancellation on). Hold the button to talk.");
    for (;;) {
      const {value: data, done} = await reader.read();
      if (done || !ws || ws.readyState > 1) { track.stop(); break; }
      const n = data.numberOfFrames, rate = data.sampleRate;
      if (!vstats.talking) { data.close(); continue; }
      if (!encoder) encoder = newEncoder(rate);
      // the first sample of this block was captured its duration before it reached the page
      encoder.st.fifo.push({wall: Date.now() * 1000 - n * 1e6 / rate, n, rate});
      const mono = new Float32Array(n);
      data.copyTo(mono, {planeIndex: 0, format: "f32-planar"});
      encoder.encode(new AudioData({format: "f32-planar", sampleRate: rate, numberOfFrames: n, numberOfChannels: 1,
        timestamp: data.timestamp, data: mono}));
      data.close();
    }
  }
  function onChunk(chunk, st) {
    const bytes = new Uint8Array(chunk.byteLength);
    chunk.copyTo(bytes);
    batch.push({wall: takeWall(st, Math.round((chunk.duration || FRAME_MS * 1000) * st.rate / 1e6)), bytes});
    if (batch.length >= TALK_GROUP) flushTalk();
  }
  function flushTalk() {
    if (!batch.length || !ws || ws.readyState !== 1) { batch = []; return; }
    const head = new TextEncoder().encode(JSON.stringify({capture_wall_us: Math.round(batch[0].wall), frame_ms: FRAME_MS,
      packets: batch.map((b) => b.bytes.length)}));
    const size = batch.reduce((a, b) => a + b.bytes.length, 0);
    const out = new Uint8Array(4 + head.length + size);
    new DataView(out.buffer).setUint32(0, head.length);
    out.set(head, 4);
    let pos = 4 + head.length;
    for (const b of batch) { out.set(b.bytes, pos); pos += b.bytes.length; }
    ws.send(out);
    vstats.talkSent += 1; vstats.talkPackets += batch.length; vstats.talkBytes += out.length;
    batch = [];
  }
  function talk(on) {
    if (talkBtn.disabled || vstats.talking === on) return;
    vstats.talking = on;
    talkBtn.classList.toggle("on", on);
    talkBtn.textContent = on ? t("Talking… (release to stop)") : t("Hold to talk");
    if (!on && encoder) {
      const done = encoder;
      encoder = null;
      done.flush().then(() => { flushTalk(); done.close(); }).catch(() => {});
    }
  }
  talkBtn.addEventListener("pointerdown", () => talk(true));
  for (const ev of ["pointerup", "pointerleave", "pointercancel"]) talkBtn.addEventListener(ev, () => talk(false));

  function stop() {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({t: "stop"}));
    stopBtn.disabled = true;
    muteBtn.disabled = true;
    talk(false);
    talkBtn.disabled = true;
    if (timer) clearInterval(timer);
  }
  startBtn.addEventListener("click", start);
  stopBtn.addEventListener("click", stop);
  muteBtn.addEventListener("click", () => {
    muted = !muted;
    vstats.muted = muted;
    gain.gain.value = muted ? 0 : 1;
    muteBtn.textContent = muted ? t("Unmute") : t("Mute");
  });
  window.addEventListener("pagehide", stop);
});

"""Voice mouth-to-ear latency and bitrate, and what voice costs the agent next to live video alone.

One run on a loopback Mosquitto with TLS, the console (``evidence-officer console``) and Debian's chromium:
two device processes (``evidence-agent run --config``, synthetic camera, recording on), identical except
that B has ``[audio]`` on with the file microphone (a tone played in real time, so each block is "spoken" at
its signed capture time). A live page is open on each, at the same time under the same load; on B the
voice panel is started too.

* **site -> officer**: for every decoded Opus frame the page takes the signed capture time of its first
  sample and the moment it is due out of the speaker (scheduled start + the AudioContext's output
  latency): the mouth-to-ear latency, including the page's jitter buffer. p50/p95, and kbit/s of signed
  audio messages on the wire.
* **officer -> site**: chromium's fake microphone plays another tone and the push-to-talk button is held for
  the whole window; the device logs, when the session ends, capture -> written to its speaker (the page's
  capture time of each group's first sample, as the console signed it, to the device's wall clock when the
  decoded samples go to the sink) p50/p95; kbit/s of officer-signed talk messages counted on the broker.
* **agent cost**: CPU seconds per second (utime+stime from /proc) over the window and peak RSS (VmHWM) of
  A (live video alone) and B (live video + two-way voice), and their ratio.

    python benchmarks/talkback_latency.py [--seconds 60] [--json]

x86 loopback figures on a loaded 2-core VM, never Pi figures. Goal (issue 23): p50 <= 400 ms,
p95 <= 700 ms, <= 64 kbit/s each way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.wire.mqtt import Inbound, MqttLink  # noqa: E402
from tests.support.console_stack import CHROMIUM, CHROMIUM_ARGS, build_console_stack  # noqa: E402
from tests.support.voice import tone, write_wav  # noqa: E402

SITE = "site-1"
W, H, FPS = 640, 360, 10


def pct(data: list[float], p: float) -> float | None:
    s = sorted(data)
    return None if not s else round(s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))], 1)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the measured window")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="talkback-bench-") as tmp:
        root = Path(tmp)
        st = build_console_stack(root)
        wav = write_wav(root / "tone.wav", tone(660, 10.0))
        officer_wav = write_wav(root / "officer.wav", tone(440, 10.0))
        talk_bytes = [0]
        try:
            audio = (f'[audio]\nenabled = true\nsource = "file"\nsource_file = "{wav}"\nsink = "file"\n'
                     f'sink_file = "{root / "speaker.wav"}"\ndefault_seconds = {args.seconds + 120}\n')
            live = {"max_seconds": 7200}
            a = st.start_device(st.device_config("cam-a", SITE, width=W, height=H, fps=FPS, live=live))
            b = st.start_device(st.device_config("cam-b", SITE, width=W, height=H, fps=FPS, live=live,
                                                 extra_toml=audio))
            _con, url = st.start_console("officer-alice", seconds=args.seconds + 120)
            counter = MqttLink(st.broker.mqtt_config("officer-bob", client_id="talk-counter"), name="counter")
            counter.start()
            counter.wait_connected(10)

            def count(msg: Inbound) -> None:
                talk_bytes[0] += len(msg.payload)

            counter.subscribe_wait(f"evidence/{SITE}/cam-b/talk/+", count, 0)
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                    *CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                    f"--use-file-for-fake-audio-capture={officer_wav}"])
                pa, pb = browser.new_page(), browser.new_page()
                pa.goto(f"{url}/live/{SITE}/cam-a")
                pb.goto(f"{url}/live/{SITE}/cam-b")
                for p in (pa, pb):
                    p.wait_for_function("() => window.consoleStats && window.consoleStats.presented > 10",
                                        timeout=120_000)
                pb.click("#voice-start")
                pb.wait_for_function("() => window.voiceStats.decoded > 50", timeout=60_000)
                pb.wait_for_selector("#voice-talk-status:has-text('Microphone ready')", timeout=60_000)
                pb.hover("#voice-talk")
                pb.mouse.down()
                pb.wait_for_function("() => window.voiceStats.talkSent > 5", timeout=60_000)
                s0 = pb.evaluate("() => ({l: window.voiceStats.latencies.length, b: window.voiceStats.bytes})")
                c0, t0, tb0 = (cpu_s(a.proc.pid), cpu_s(b.proc.pid)), time.monotonic(), talk_bytes[0]
                pb.wait_for_timeout(args.seconds * 1000)
                c1, elapsed, tb1 = (cpu_s(a.proc.pid), cpu_s(b.proc.pid)), time.monotonic() - t0, talk_bytes[0]
                s1 = pb.evaluate("() => ({lat: window.voiceStats.latencies, b: window.voiceStats.bytes,"
                                 " refused: window.voiceStats.refused, talkRefused: window.voiceStats.talkRefused})")
                rss = (peak_rss_mb(a.proc.pid), peak_rss_mb(b.proc.pid))
                pb.mouse.up()
                pb.click("#voice-stop")
                pb.wait_for_function("() => window.voiceStats.ended", timeout=60_000)
                browser.close()
            counter.close(offline=False)
            talk_log = re.findall(r"officer voice: (\d+) message\(s\), (\d+) refused, capture->speaker p50 (\d+) ms "
                                  r"p95 (\d+) ms", b.text())
        finally:
            st.close()
    lat = s1["lat"][s0["l"]:]
    cpu_a, cpu_b = (c1[0] - c0[0]) / elapsed, (c1[1] - c0[1]) / elapsed
    out: dict[str, Any] = {
        "seconds": round(elapsed, 1), "video": f"{W}x{H}@{FPS}",
        "site_to_officer": {"mouth_to_ear_p50_ms": pct(lat, 50), "mouth_to_ear_p95_ms": pct(lat, 95),
                            "frames": len(lat), "kbit_s": round((s1["b"] - s0["b"]) * 8 / 1000 / elapsed, 1),
                            "refused": s1["refused"]},
        "officer_to_site": None if not talk_log else {
            "capture_to_speaker_p50_ms": int(talk_log[-1][2]), "capture_to_speaker_p95_ms": int(talk_log[-1][3]),
            "messages": int(talk_log[-1][0]), "refused_by_device": int(talk_log[-1][1]),
            "refused_by_console": s1["talkRefused"], "kbit_s": round((tb1 - tb0) * 8 / 1000 / elapsed, 1)},
        "agent_live_only": {"cpu_cores": round(cpu_a, 3), "peak_rss_mb": rss[0]},
        "agent_live_and_voice": {"cpu_cores": round(cpu_b, 3), "peak_rss_mb": rss[1]},
        "cpu_ratio_voice_over_live": round(cpu_b / cpu_a, 2) if cpu_a else None,
        "rss_ratio_voice_over_live": round(rss[1] / rss[0], 2) if rss[0] and rss[1] else None,
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        s = out["site_to_officer"]
        print(f"site -> officer: mouth-to-ear p50 {s['mouth_to_ear_p50_ms']} ms, p95 {s['mouth_to_ear_p95_ms']} ms "
              f"over {s['frames']} frames; {s['kbit_s']} kbit/s signed; {s['refused']} refused")
        o = out["officer_to_site"] or {}
        print(f"officer -> site: capture -> speaker p50 {o.get('capture_to_speaker_p50_ms')} ms, p95 "
              f"{o.get('capture_to_speaker_p95_ms')} ms; {o.get('kbit_s')} kbit/s signed")
        print(f"agent, live only: {cpu_a:.3f} cores, peak RSS {rss[0]} MB; live + voice: {cpu_b:.3f} cores, "
              f"peak RSS {rss[1]} MB (CPU x{out['cpu_ratio_voice_over_live']}, RSS "
              f"x{out['rss_ratio_voice_over_live']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

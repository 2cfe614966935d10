"""Glass-to-glass latency of the officer console: signed capture time -> frame presented in Chromium.

One run, one device process (``evidence-agent run --config``: synthetic 1280x720 camera at 15 fps, recording
on with its own encoder, burn-in overlay, uplink with mTLS) on a loopback Mosquitto with TLS, and:

* **H.264 (console)**: ``evidence-officer console`` verifies each signed fMP4 fragment and forwards it over a
  WebSocket to Debian's chromium (Playwright), which plays it with Media Source Extensions. For every
  presented frame ``requestVideoFrameCallback`` gives the display time; the signed header maps the frame's
  media time to its capture time. Reported: p50/p95 capture->presented, capture->in the tab (verified,
  before decoding), the drift at the end (how far behind the live edge the player sits, and the latency of
  the last 10 s against the first 10 s), Mbit/s on the wire (signed messages), fps presented.
* **JPEG (the peer: today's live path)** at the same size, quality 75, 15 fps: ``run_live`` of
  ``evidence-officer live`` verifies every frame; capture->verified and Mbit/s. No browser plays MJPEG
  from this path, so its latency is compared with the H.264 capture->in-the-tab figure.
* The agent's peak RSS (VmHWM) with recording, live and uplink on.

    python benchmarks/console_latency.py [--seconds 30] [--json]

x86 loopback figures, never Pi figures. Goal (issue 13): p50 <= 500 ms, p95 <= 1 s, drift <= 1 s,
<= 2.5 Mbit/s at 720p15.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.customs.cmd_cmd import OfficerClient  # noqa: E402
from agent.customs.keys import load_officer  # noqa: E402
from agent.customs.live_cmd import run_live  # noqa: E402
from agent.wire.mqtt import MqttLink  # noqa: E402
from tests.support.console_stack import CHROMIUM, ConsoleStack, build_console_stack, chromium  # noqa: E402

SITE, DEVICE = "site-1", "cam-1"
W, H, FPS = 1280, 720, 15


def pct(data: list[float], p: float) -> float | None:
    s = sorted(data)
    return None if not s else s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def h264_run(url: str, seconds: float) -> dict[str, Any]:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/live/{SITE}/{DEVICE}")
        page.wait_for_function("() => window.consoleStats && window.consoleStats.presented > 10", timeout=60_000)
        start = page.evaluate("() => ({p: window.consoleStats.presented, b: window.consoleStats.bytes,"
                              " l: window.consoleStats.latencies.length, a: window.consoleStats.arrivals.length})")
        t0 = time.monotonic()
        first10: list[float] = []
        while time.monotonic() - t0 < seconds:
            time.sleep(min(5.0, seconds - (time.monotonic() - t0)) if seconds > 0 else 0)
            if not first10 and time.monotonic() - t0 >= min(10.0, seconds / 3):
                first10 = page.evaluate(f"() => window.consoleStats.latencies.slice({start['l']})")
        elapsed = time.monotonic() - t0
        end = page.evaluate("() => ({...window.consoleStats, decoded: document.getElementById('video')"
                            ".getVideoPlaybackQuality().totalVideoFrames})")
        page.close()
    lat = end["latencies"][start["l"]:]
    arr = end["arrivals"][start["a"]:]
    last = lat[-int(FPS * 10):]
    mbit = (end["bytes"] - start["b"]) * 8 / 1e6 / elapsed
    return {"seconds": round(elapsed, 1), "presented_fps": round((end["presented"] - start["p"]) / elapsed, 1),
            "glass_p50_ms": _r(pct(lat, 50)), "glass_p95_ms": _r(pct(lat, 95)), "glass_max_ms": _r(max(lat, default=0)),
            "in_tab_p50_ms": _r(pct(arr, 50)), "in_tab_p95_ms": _r(pct(arr, 95)),
            "behind_live_edge_end_s": round(end["behindS"], 3),
            "drift_ms": _r((pct(last, 50) or 0) - (pct(first10, 50) or 0)), "jumps": end["jumps"],
            "refused": end["refused"], "mbit_s": round(mbit, 3)}


def jpeg_run(st: ConsoleStack, seconds: float) -> dict[str, Any]:
    link = MqttLink(st.broker.mqtt_config("officer-bob", client_id="bench-jpeg"), name="officer")
    link.start()
    assert link.wait_connected(10), link.last_error
    try:
        client = OfficerClient(link, load_officer(st.officer_dirs["officer-bob"]))
        bytes_in = [0]
        orig = link.subscribe_wait

        def counting(filter_: str, handler: Any, qos: int = 1, timeout: float = 10.0) -> list[int]:
            def h(msg: Any) -> None:
                bytes_in[0] += len(msg.payload)
                handler(msg)
            return orig(filter_, h, qos, timeout)

        link.subscribe_wait = counting  # type: ignore[method-assign]
        t0 = time.monotonic()
        stats = run_live(client, SITE, DEVICE, seconds=seconds,
                         params={"width": W, "height": H, "fps": FPS, "quality": 75, "seconds": seconds + 10})
        elapsed = time.monotonic() - t0
    finally:
        link.close(offline=False)
    s = stats.summary()
    return {"seconds": round(elapsed, 1), "frames": stats.frames, "fps": round(stats.frames / elapsed, 1),
            "verified_p50_ms": s["latency_p50_ms"], "verified_p95_ms": s["latency_p95_ms"],
            "rejected": stats.rejected, "mbit_s": round(bytes_in[0] * 8 / 1e6 / elapsed, 3)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each run (the issue's report: 300)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        st = build_console_stack(Path(tmp))
        try:
            dev = st.start_device(st.device_config(DEVICE, SITE, width=W, height=H, fps=FPS,
                                                   live={"max_seconds": 7200}))
            _con, url = st.start_console("officer-alice", seconds=max(60, args.seconds + 60))
            h264 = h264_run(url, args.seconds)
            jpeg = jpeg_run(st, min(args.seconds, 60.0))
            rss = peak_rss_mb(dev.proc.pid)
        finally:
            st.close()
    out = {"size": f"{W}x{H}", "fps": FPS, "h264_console": h264, "jpeg_cli": jpeg, "agent_peak_rss_mb": rss,
           "bandwidth_ratio_jpeg_over_h264": round(jpeg["mbit_s"] / h264["mbit_s"], 2) if h264["mbit_s"] else None}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{W}x{H} @ {FPS} fps on loopback Mosquitto/TLS; agent recording + live + uplink, peak RSS {rss} MB")
        print(f"H.264 console: capture->presented p50 {h264['glass_p50_ms']} ms, p95 {h264['glass_p95_ms']} ms; "
              f"capture->in tab p50 {h264['in_tab_p50_ms']} ms; {h264['mbit_s']} Mbit/s; {h264['presented_fps']} "
              f"fps; {h264['behind_live_edge_end_s']} s behind the edge at the end, drift {h264['drift_ms']} ms, "
              f"{h264['jumps']} jumps, {h264['refused']} refused")
        print(f"JPEG CLI:      capture->verified p50 {jpeg['verified_p50_ms']} ms, p95 {jpeg['verified_p95_ms']} ms; "
              f"{jpeg['mbit_s']} Mbit/s; {jpeg['fps']} fps")
        print(f"bandwidth JPEG/H.264: {out['bandwidth_ratio_jpeg_over_h264']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

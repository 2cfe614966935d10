"""Cost of a full-resolution document still on the device: seconds and peak memory, vs a stream still and vs
the bare JPEG encode of the same pixels (the peer: what any camera script does, Pillow's encoder), same run.

Each sample is a fresh child process (peak RSS, ``ru_maxrss``, only grows): the running agent
(``Agent`` from a config, synthetic camera at 1280x720 with a 4608x2592 "sensor", video recording, C2PA as
configured) takes one officer still -- ``stream`` (the video's size) or ``full`` (the sensor) -- and reports its
seconds from request to sealed and the process's peak RSS before and after. ``pillow`` encodes the same
4608x2592 frame to JPEG with Pillow alone. Modes are interleaved, medians printed with ratios.

Run: python benchmarks/full_still_bench.py [--rounds 3] [--json]. x86 VM figures, not a Raspberry Pi's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SENSOR = (4608, 2592)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str) -> dict[str, Any]:
    """One sample in this process."""
    from agent.capture.base import CaptureSettings
    from agent.capture.synthetic import SyntheticBackend
    from agent.core.clock import SystemClock

    if mode == "pillow":
        import io

        from PIL import Image

        from agent.capture.pixels import bgr

        cam = SyntheticBackend(CaptureSettings(realtime=False, sensor_width=SENSOR[0], sensor_height=SENSOR[1]),
                               SystemClock())
        with cam:
            frame = cam.full_frame(cam.read())
        assert frame is not None
        rgb = bgr(frame)[..., ::-1].copy()
        before = _rss_mb()
        t0 = time.perf_counter()
        Image.fromarray(rgb, "RGB").save(io.BytesIO(), "JPEG", quality=90, subsampling="4:2:0")
        return {"mode": mode, "seconds": time.perf_counter() - t0, "rss_before_mb": before, "rss_peak_mb": _rss_mb()}
    from agent.device.config import parse_config
    from agent.device.runtime import Agent
    from agent.signing.keys import init_identity

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        init_identity(root / "keys", "bench", "Bench")
        cfg = parse_config({"device": {"id": "bench"}, "identity": {"key_dir": str(root / "keys")},
                            "vault": {"path": str(root / "vault")},
                            "capture": {"width": 1280, "height": 720, "fps": 10, "still_interval_s": 3600,
                                        "sensor_width": SENSOR[0], "sensor_height": SENSOR[1]}})
        agent = Agent(cfg)
        try:
            agent.start()
            deadline = time.monotonic() + 60
            while agent.hub.latest is None and time.monotonic() < deadline:
                agent.stop_event.wait(0.05)
            agent.take_still("warm-up")  # the same code paths loaded and warmed for both modes
            before = _rss_mb()
            t0 = time.perf_counter()
            item = agent.take_full_still("officer") if mode == "full" else agent.take_still("officer")
            seconds = time.perf_counter() - t0
            assert item is not None
            extra = item.record["extra"]
            return {"mode": mode, "seconds": seconds, "rss_before_mb": before, "rss_peak_mb": _rss_mb(),
                    "size": [extra["width"], extra["height"]], "jpeg_bytes": item.record["media"]["size"]}
        finally:
            agent.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", choices=("stream", "full", "pillow"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    samples: dict[str, list[dict[str, Any]]] = {"stream": [], "full": [], "pillow": []}
    for _ in range(args.rounds):
        for mode in samples:  # interleaved: the load of the shared machine falls on every mode alike
            out = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True,
                                 check=True, cwd=Path(__file__).resolve().parent.parent)
            samples[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))

    def med(mode: str, key: str) -> float:
        return round(statistics.median(s[key] for s in samples[mode]), 3)

    result: dict[str, Any] = {m: {"seconds_p50": med(m, "seconds"),
                                  "rss_growth_mb_p50": round(statistics.median(
                                      s["rss_peak_mb"] - s["rss_before_mb"] for s in samples[m]), 1),
                                  "rss_peak_mb_p50": med(m, "rss_peak_mb")} for m in samples}
    result["full"]["jpeg_bytes_p50"] = med("full", "jpeg_bytes")
    result["full"]["size"] = samples["full"][0]["size"]
    result["stream"]["size"] = samples["stream"][0]["size"]
    result["ratio_full_vs_pillow_encode"] = round(result["full"]["seconds_p50"] / result["pillow"]["seconds_p50"], 2)
    result["ratio_full_vs_stream_still"] = round(result["full"]["seconds_p50"] / result["stream"]["seconds_p50"], 2)
    result["rounds"] = args.rounds
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for m in ("stream", "full", "pillow"):
        r = result[m]
        print(f"{m:7s} {r['seconds_p50']:.3f} s  peak RSS {r['rss_peak_mb_p50']:.0f} MB "
              f"(+{r['rss_growth_mb_p50']:.0f} MB for the still)")
    print(f"full still / Pillow encode of the same pixels: {result['ratio_full_vs_pillow_encode']}x; "
          f"full / stream still: {result['ratio_full_vs_stream_still']}x; "
          f"full JPEG {result['full']['jpeg_bytes_p50'] / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

"""Video pipeline cost: the agent (encode -> C2PA -> seal -> vault) vs the ffmpeg CLI on the same frames.

Both sides get the same 1280x720 BGR frames (a panning synthetic scene) at 30 fps video time and the
same encoder settings (libx264, preset/crf/GOP/no B-frames) and 10 s fragmented-MP4 segments. Frames
are made as fast as possible, so CPU seconds per video second is what is compared, not real time.

* agent: a child process running VideoService (analytics on, C2PA on, real Vault + Sealer). Its
  CPU includes making the frames; that cost is measured on its own and subtracted ("net").
* ffmpeg: ``ffmpeg -f rawvideo -i - ... -f segment`` fed through a pipe; its CPU is the child's rusage.

Also reported: sealing latency after segment close (p50/p95), C2PA signing time, the longest
``push()`` (does signing stall the frame loop?) and peak RSS of the agent process.

    python benchmarks/video_bench.py [--seconds 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

W, H, FPS = 1280, 720, 30.0
PRESET, CRF = "veryfast", 23
TUNE = "zerolatency"  # the agent's default (VideoConfig.tune)


class Frames:
    """Panning scene: a wide canvas from the synthetic backend, a moving window per frame."""

    def __init__(self) -> None:
        from agent.capture.base import CaptureSettings
        from agent.capture.synthetic import SyntheticBackend
        from agent.core.clock import ManualClock

        cam = SyntheticBackend(CaptureSettings(width=W * 2, height=H, fps=FPS, realtime=False), ManualClock())
        with cam:
            self.canvas = np.ascontiguousarray(cam.read().image)

    def image(self, i: int) -> npt.NDArray[np.uint8]:
        x = (i * 6) % W
        return np.ascontiguousarray(self.canvas[:, x:x + W])


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


VARIANTS: dict[str, dict[str, Any]] = {
    "full": {},
    "no-c2pa": {"c2pa": {"enabled": False}},
    "no-c2pa-no-analytics": {"c2pa": {"enabled": False}, "analytics": {"enabled": False}},
}


def run_agent(seconds: float, work: Path, variant: str = "full", threads: int = 0) -> dict[str, Any]:
    """Child process body: the whole agent pipeline on ``seconds`` of video."""
    from agent.core.clock import ManualClock
    from agent.core.model import Frame, GpsFix, GpsReading, Moment, TimeQuality
    from agent.device.sealer import Sealer
    from agent.evidence.vault import Vault
    from agent.signing.keys import init_identity, load_identity
    from agent.video.service import VideoService
    from agent.video.settings import VideoConfig

    frames = Frames()
    n = int(seconds * FPS)
    t0 = cpu()
    for i in range(n):
        frames.image(i)
    gen_cpu = cpu() - t0

    init_identity(work / "keys", "bench-device", "Bench Org")
    identity = load_identity(work / "keys")
    vault = Vault(work / "vault")
    sealer = Sealer(vault, identity, device_id="bench-device", site_id="bench-site")
    clock = ManualClock(wall=time.time_ns())
    fix = GpsReading(GpsFix(lat=31.2304, lon=121.4737, mode=3, fix_time="2026-11-22T09:00:00Z", hdop=0.9))

    class Sensors:
        def moment(self) -> Moment:
            return Moment(clock.wall_ns(), clock.mono_ns(), fix, TimeQuality(source="ntp", synced=True))

    sealer.start(Sensors().moment())
    cfg = VideoConfig.model_validate({"encoder": "libx264", "preset": PRESET, "crf": CRF, "fps": FPS,
                                      "segment_seconds": 10, "threads": threads, "tune": TUNE, **VARIANTS[variant]})
    svc = VideoService(cfg, sealer=sealer, vault=vault, identity=identity, sensors=Sensors(),
                       device_id="bench-device", site_id="bench-site")
    svc.start()
    push_s: list[float] = []
    c0, w0 = cpu(), time.perf_counter()
    for i in range(n):
        f = Frame(frames.image(i), i, clock.wall_ns(), clock.mono_ns())
        clock.advance(1 / FPS)
        p0 = time.perf_counter()
        svc.push(f)
        push_s.append(time.perf_counter() - p0)
    svc.close()
    total_cpu, wall = cpu() - c0, time.perf_counter() - w0
    stats = svc.media.stats
    size = sum(p.stat().st_size for p in (work / "vault" / "items").rglob("*.segment.mp4"))
    vault.close()
    return {"frames": n, "video_s": n / FPS, "cpu_s": total_cpu, "gen_cpu_s": gen_cpu, "wall_s": wall,
            "segments": stats.segments, "errors": stats.errors, "bytes": size,
            "seal_latency_s": stats.latency_s, "c2pa_s": stats.c2pa_s,
            "push_p50_ms": pct(push_s, 0.5) * 1e3, "push_p99_ms": pct(push_s, 0.99) * 1e3,
            "push_max_ms": max(push_s) * 1e3, "encoder": svc.recorder.codec,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_ffmpeg(seconds: float, work: Path, threads: int = 0) -> dict[str, Any]:
    """The ffmpeg CLI doing the same encode and segmenting, fed the same frames through a pipe."""
    frames = Frames()
    n = int(seconds * FPS)
    out = work / "ffmpeg"
    out.mkdir()
    gop = str(int(FPS))
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{W}x{H}",
           "-r", str(int(FPS)), "-i", "-", "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF),
           *(["-tune", TUNE] if TUNE else []),
           "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
           *(["-threads", str(threads)] if threads else []),
           "-f", "segment", "-segment_time", "10", "-segment_format", "mp4", "-reset_timestamps", "1",
           "-segment_format_options", "movflags=frag_keyframe+empty_moov+default_base_moof",
           str(out / "seg%03d.mp4")]
    w0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for i in range(n):
        proc.stdin.write(frames.image(i).tobytes())
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed with {proc.returncode}")
    return {"frames": n, "video_s": n / FPS, "cpu_s": usage.ru_utime + usage.ru_stime,
            "wall_s": time.perf_counter() - w0, "segments": len(list(out.glob("seg*.mp4"))),
            "bytes": sum(p.stat().st_size for p in out.glob("seg*.mp4")),
            "peak_rss_mb": usage.ru_maxrss / 1024}


def child(role: str, seconds: float, variant: str = "full", threads: int = 0) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", role, "--seconds", str(seconds),
                           "--variant", variant, "--threads", str(threads)],
                          capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="video seconds per run")
    ap.add_argument("--repeat", type=int, default=3, help="alternating agent/ffmpeg runs (median reported)")
    ap.add_argument("--json", action="store_true", help="print raw JSON")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="full", help="agent configuration")
    ap.add_argument("--threads", type=int, default=0, help="encoder threads (0 = encoder's choice)")
    ap.add_argument("--child", choices=["agent", "ffmpeg"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory(prefix="video-bench-") as tmp:
            if args.child == "agent":
                out = run_agent(args.seconds, Path(tmp), args.variant, args.threads)
            else:
                out = run_ffmpeg(args.seconds, Path(tmp), args.threads)
            print(json.dumps(out))
        return
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is not installed")
    # alternate agent and ffmpeg runs: other load on the host hits both sides alike; report medians
    runs = [(child("agent", args.seconds, args.variant, args.threads),
             child("ffmpeg", args.seconds, "full", args.threads)) for _ in range(args.repeat)]
    ratios = sorted(((a["cpu_s"] - a["gen_cpu_s"]) / f["cpu_s"], k) for k, (a, f) in enumerate(runs))
    agent, ff = runs[ratios[len(ratios) // 2][1]]  # the run with the median ratio
    agent["seal_latency_s"] = [x for a, _ in runs for x in a["seal_latency_s"]]  # pool latencies
    agent["c2pa_s"] = [x for a, _ in runs for x in a["c2pa_s"]]
    agent["peak_rss_mb"] = max(a["peak_rss_mb"] for a, _ in runs)
    net = agent["cpu_s"] - agent["gen_cpu_s"]
    res = {"agent": agent, "ffmpeg": ff, "ratios_net": [r for r, _ in ratios],
           "agent_cpu_per_video_s": agent["cpu_s"] / agent["video_s"],
           "agent_net_cpu_per_video_s": net / agent["video_s"],
           "ffmpeg_cpu_per_video_s": ff["cpu_s"] / ff["video_s"],
           "ratio_net": net / ff["cpu_s"], "ratio_gross": agent["cpu_s"] / ff["cpu_s"]}
    if args.json:
        print(json.dumps(res, indent=2))
        return
    lat, c2 = agent["seal_latency_s"], agent["c2pa_s"]
    print(f"video: {W}x{H}@{FPS:g}, {agent['video_s']:.0f} s, libx264 {PRESET} crf {CRF} tune {TUNE}, "
          f"gop {int(FPS)}, "
          f"threads {args.threads or 'auto'}, agent variant {args.variant}, "
          f"10 s fMP4 segments  (host: {os.cpu_count()} CPUs, x86 figures, not a Pi)")
    print(f"agent  : {res['agent_cpu_per_video_s']:.3f} CPU s / video s gross, "
          f"{res['agent_net_cpu_per_video_s']:.3f} net of frame making "
          f"({agent['gen_cpu_s'] / agent['video_s']:.3f}); {agent['segments']} segments, "
          f"errors {len(agent['errors'])}, {agent['bytes'] / agent['video_s'] * 3600 / 1e9:.2f} GB/h, "
          f"peak RSS {agent['peak_rss_mb']:.0f} MB")
    print(f"ffmpeg : {res['ffmpeg_cpu_per_video_s']:.3f} CPU s / video s; {ff['segments']} segments, "
          f"{ff['bytes'] / ff['video_s'] * 3600 / 1e9:.2f} GB/h, "
          f"peak RSS {ff['peak_rss_mb']:.0f} MB")
    print(f"ratio agent/ffmpeg: {res['ratio_net']:.2f}x net, {res['ratio_gross']:.2f}x gross (median run of "
          f"{args.repeat}; all net ratios {', '.join(f'{r:.2f}' for r, _ in ratios)})")
    print(f"sealing latency after close: p50 {pct(lat, .5) * 1e3:.0f} ms, p95 {pct(lat, .95) * 1e3:.0f} ms "
          f"(n={len(lat)}); C2PA signing per segment p50 {pct(c2, .5) * 1e3:.0f} ms, "
          f"max {max(c2, default=float('nan')) * 1e3:.0f} ms")
    print(f"frame loop push(): p50 {agent['push_p50_ms']:.1f} ms, p99 {agent['push_p99_ms']:.1f} ms, "
          f"max {agent['push_max_ms']:.1f} ms")


if __name__ == "__main__":
    main()

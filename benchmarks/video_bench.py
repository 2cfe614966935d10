"""Device video cost through the real process: `evidence-agent run --config` vs ffmpeg on the same file.

Both sides read the same 1280x720 H.264 file in real time (looped), decode it and encode it with the
same x264 settings (preset, tune, crf, GOP = one fragment, no B-frames, no scene cut) into 10 s
fragmented-MP4 segments:

* agent: the user's process (`run --config`), file camera, video + stills + C2PA + analytics, and with
  ``--uplink`` (default when Mosquitto is installed) a mutual-TLS MQTT uplink to a local broker. Run twice
  per round: the code of this checkout ("new") and of ``--old-ref`` (default ``main``, unpacked with
  ``git archive``; "old"), the same interpreter and packages.
* ffmpeg: ``ffmpeg -re -stream_loop -1 -i FILE -c:v libx264 ... -f segment`` (decodes to I420, encodes).

CPU is user+system seconds per second of wall time between ``--warmup`` s after start and 1 s before the
stop (from /proc/PID/stat: start-up imports and the final drain are excluded), peak RSS is the child's
``ru_maxrss`` (whole life), threads are read at the last sample. Each figure is the median of ``--reps``
rounds; within a round old, new and ffmpeg run one after the other, in a rotating order. x86 VM figures.

    python benchmarks/video_bench.py [--seconds 40] [--reps 3] [--json] [--no-old] [--no-uplink]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

W, H = 1280, 720
PRESET, TUNE, CRF = "veryfast", "zerolatency", 23
SEGMENT_S = 10
GOALS = {"cpu_ratio": 1.25, "rss_mb": 150.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")
LAUNCH = "import sys; from agent.device.cli import main; sys.exit(main())"  # what the console script does


def make_clip(out: Path, fps: float, seconds: int = 30) -> Path:
    """A 1280x720 H.264 file: a real camera clip scaled up, or ffmpeg's test pattern when it is absent."""
    real = REPO / ".." / "shared" / "data" / "video" / "car-detection.mp4"
    src = ["-stream_loop", "-1", "-i", str(real)] if real.is_file() else \
        ["-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate={fps}"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *src, "-t", str(seconds), "-vf", f"scale={W}:{H},fps={fps}",
                    "-c:v", "libx264", "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p", "-an", str(out)],
                   check=True, timeout=600)
    return out


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime + stime in clock ticks, threads) of a live process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12]), int(fields[17])


def measure(argv: list[str], env: dict[str, str], seconds: float, warmup: float, cwd: Path) -> dict[str, float]:
    """Run a child for ``seconds`` (it stops itself); CPU s/s between warmup and seconds - 1, peak RSS."""
    t0 = time.monotonic()
    log = cwd / "stderr.log"
    with log.open("wb") as err_out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err_out)
    first: tuple[float, int] | None = None
    last: tuple[float, int, int] | None = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic() - t0
        try:
            ticks, threads = cpu_ticks(proc.pid)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if first is None and now >= warmup:
            first = (now, ticks)
        if first is not None and now <= seconds - 1:
            last = (now, ticks, threads)
        time.sleep(0.2)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    err = log.read_text(errors="replace")
    if code != 0:
        raise RuntimeError(f"{argv[:3]} exited {code}: {err[-2000:]}")
    if first is None or last is None or last[0] <= first[0]:
        raise RuntimeError(f"{argv[:3]} ended before the measuring window ({err[-1000:]})")
    return {"cpu_s_per_s": (last[1] - first[1]) / CLK_TCK / (last[0] - first[0]),
            "rss_mb": usage.ru_maxrss / 1024, "threads": float(last[2])}


def ffmpeg_argv(clip: Path, out: Path, fps: float, seconds: float) -> list[str]:
    gop = str(round(fps))  # one keyframe a fragment (fragment_seconds = 1)
    return ["ffmpeg", "-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", str(clip), "-t", str(seconds),
            "-an", "-c:v", "libx264", "-preset", PRESET, "-tune", TUNE, "-crf", str(CRF), "-g", gop,
            "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
            "-f", "segment", "-segment_time", str(SEGMENT_S), "-segment_format", "mp4",
            "-segment_format_options", "movflags=frag_keyframe+empty_moov+default_base_moof",
            "-reset_timestamps", "1", str(out / "seg%04d.mp4")]


def agent_config(root: Path, keys: Path, backend: str, clip: Path, broker: Any | None) -> Path:
    """The agent's config for one run (a fresh vault and outbox each time)."""
    vault = root / "vault"
    text = f"""
[device]
id = "cam-0001"
site_id = "site-0001"
[identity]
key_dir = "{keys}"
[vault]
path = "{vault}"
[capture]
backend = "{backend}"
source = "{clip}"
loop = true
still_interval_s = 5
[gps]
source = "simulated"
[video]
enabled = true
segment_seconds = {SEGMENT_S}
preset = "{PRESET}"
tune = "{TUNE}"
crf = {CRF}
encoder = "libx264"
[video.c2pa]
enabled = true
[video.analytics]
enabled = true
"""
    if broker is not None:
        cert = broker.pki.client("cam-0001")
        text += f"""
[uplink]
enabled = true
outbox_path = "{root / 'outbox.sqlite'}"
require_subscriber = false
[uplink.mqtt]
broker = "{broker.url}"
client_id = "cam-0001"
[uplink.mqtt.tls]
ca_file = "{cert.ca}"
cert_file = "{cert.cert}"
key_file = "{cert.key}"
[uplink.commands]
enabled = false
"""
    cfg = root / "agent.toml"
    cfg.write_text(text)
    return cfg


def old_tree(ref: str, into: Path) -> Path | None:
    """The agent package of ``ref`` unpacked (git archive), or None when the ref does not exist."""
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "-q", ref], capture_output=True).returncode:
        return None
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "agent"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="each run's length (default 40)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds excluded at the start (default 8)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fps", type=float, default=10.0, help="the file's frame rate (default 10, the camera default)")
    ap.add_argument("--old-ref", default="main", help="git ref of the old code (default main)")
    ap.add_argument("--no-old", action="store_true", help="skip the old code")
    ap.add_argument("--no-uplink", action="store_true", help="no MQTT uplink (default: mTLS Mosquitto if installed)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="video-bench-"))
    broker = None
    try:
        clip = make_clip(work / "clip720.mp4", args.fps)
        keys = work / "keys"
        subprocess.run([sys.executable, "-c", LAUNCH, "keys", "init", "--key-dir", str(keys), "--device-id",
                        "cam-0001"], check=True, capture_output=True, cwd=work,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        if not args.no_uplink and shutil.which("mosquitto"):
            from tests.support.broker import Mosquitto

            broker = Mosquitto(work / "broker", tls=True, autosave_interval=60)
            broker.start()
        variants: dict[str, tuple[str, Path | None]] = {"new": ("pyav", REPO)}
        old = None if args.no_old else old_tree(args.old_ref, work / "old")
        if old is not None:
            variants["old"] = ("opencv", old)  # main has no pyav backend: its file camera is OpenCV's
        names = [*variants, "ffmpeg"]
        runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                root = work / f"{name}-{rep}"
                root.mkdir()
                if name == "ffmpeg":
                    argv, env = ffmpeg_argv(clip, root, args.fps, args.seconds), dict(os.environ)
                else:
                    backend, src = variants[name]
                    cfg = agent_config(root, keys, backend, clip, broker)
                    argv = [sys.executable, "-c", LAUNCH, "run", "--config", str(cfg), "--seconds", str(args.seconds),
                            "--drain-timeout", "5"]
                    env = {**os.environ, "PYTHONPATH": str(src)}
                result = measure(argv, env, args.seconds, args.warmup, root)
                runs[name].append(result)
                print(f"round {rep + 1} {name:6s} cpu {result['cpu_s_per_s']:.3f} s/s  rss {result['rss_mb']:.0f} MB  "
                      f"threads {result['threads']:.0f}", file=sys.stderr)
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    peer = med["ffmpeg"]
    report: dict[str, Any] = {
        "setup": {"size": f"{W}x{H}", "fps": args.fps, "seconds": args.seconds, "warmup": args.warmup,
                  "reps": args.reps, "x264": {"preset": PRESET, "tune": TUNE, "crf": CRF, "bf": 0},
                  "segment_s": SEGMENT_S, "uplink": broker is not None, "old_ref": None if "old" not in med
                  else args.old_ref},
        "median": med,
        "ratio_to_ffmpeg": {n: {"cpu": m["cpu_s_per_s"] / peer["cpu_s_per_s"], "rss": m["rss_mb"] / peer["rss_mb"]}
                            for n, m in med.items() if n != "ffmpeg"},
        "goals": {"cpu_ratio_max": GOALS["cpu_ratio"], "rss_mb_max": GOALS["rss_mb"]},
        "runs": runs,
    }
    new = report["ratio_to_ffmpeg"]["new"]
    report["goals"]["met"] = {"cpu": new["cpu"] <= GOALS["cpu_ratio"], "rss": med["new"]["rss_mb"] <= GOALS["rss_mb"]}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{W}x{H} @ {args.fps:g} fps file camera, {args.seconds:g} s runs, medians of {args.reps}"
          f"{', mTLS uplink' if broker is not None else ''}")
    print(f"{'':8s} {'CPU s/s':>8s} {'peak RSS':>9s} {'threads':>8s} {'CPU x':>6s} {'RSS x':>6s}")
    for n, m in med.items():
        r = report["ratio_to_ffmpeg"].get(n, {"cpu": 1.0, "rss": 1.0})
        print(f"{n:8s} {m['cpu_s_per_s']:8.3f} {m['rss_mb']:7.0f} MB {m['threads']:8.0f} "
              f"{r['cpu']:6.2f} {r['rss']:6.2f}")
    met = report["goals"]["met"]
    print(f"goals (new): CPU <= {GOALS['cpu_ratio']}x ffmpeg: {'met' if met['cpu'] else 'MISSED'}; "
          f"peak RSS <= {GOALS['rss_mb']:g} MB: {'met' if met['rss'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

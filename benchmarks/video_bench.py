"""Device video cost through the real process: `evidence-agent run --config` vs ffmpeg on the same file.

Both sides read the same 1280x720 H.264 file in real time (looped), decode it and encode it with the
same x264 settings (preset, tune, crf, GOP = one fragment, no B-frames, no scene cut) into 10 s
fragmented-MP4 segments:

* agent: the user's process (`run --config`), file camera, video + stills + C2PA + analytics, and with
  ``--uplink`` (default when Mosquitto is installed) a mutual-TLS MQTT uplink to a local broker. Run twice
  per round: the code of this checkout ("new") and of ``--old-ref`` (default ``main``, unpacked with
  ``git archive``; "old"), the same interpreter and packages.
* ffmpeg: ``ffmpeg -re -stream_loop -1 -i FILE -c:v libx264 ... -f segment`` (decodes to I420, encodes).

``--viewer`` adds a second set of rounds with one live viewer (``benchmarks/bench_viewer.py``: the console's
signed ``live.start`` for H.264 1280x720, keepalives, every fragment verified) on the agent for its whole
run; its ffmpeg peer does both encodes from one decode: the segments and a second output at the live
rendition's settings (``ultrafast``, ``zerolatency``, 2 000 kbit/s VBV, 2 s GOP, one fMP4 fragment a frame).
The measuring window of a viewer round starts only once the first fragment has been verified.

CPU is user+system seconds per second of wall time between ``--warmup`` s after start and 1 s before the
stop (from /proc/PID/stat: start-up imports and the final drain are excluded), peak RSS is the child's
``ru_maxrss`` (whole life), threads are read at the last sample. Each figure is the median of ``--reps``
rounds; within a round old, new and ffmpeg run one after the other, in a rotating order. x86 VM figures.

    python benchmarks/video_bench.py [--seconds 40] [--reps 3] [--viewer] [--old-ref REF[,REF]] [--json]
                                     [--no-old] [--no-uplink]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

W, H = 1280, 720
PRESET, TUNE, CRF = "veryfast", "zerolatency", 23
SEGMENT_S = 10
GOALS = {"cpu_ratio": 1.25, "rss_mb": 150.0, "viewer_rss_mb": 175.0}
LIVE = {"preset": "ultrafast", "kbps": 2000, "gop_s": 2.0}  # agent.uplink.settings_commands.LiveConfig defaults
SITE, DEVICE, OFFICER = "site-0001", "cam-0001", "officer-alice"
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


def measure(argv: list[str], env: dict[str, str], seconds: float, warmup: float, cwd: Path,
            ready: Callable[[], bool] = lambda: True) -> dict[str, float]:
    """Run a child for ``seconds`` (it stops itself); CPU s/s from warmup (and ``ready()``) to seconds - 1,
    peak RSS."""
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
        if first is None and now >= warmup and ready():
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
            "rss_mb": usage.ru_maxrss / 1024, "threads": float(last[2]), "window_s": last[0] - first[0]}


def ffmpeg_argv(clip: Path, out: Path, fps: float, seconds: float, live: bool = False) -> list[str]:
    """The segment encode; with ``live`` also the live rendition's encode, both from one decode."""
    gop = str(round(fps))  # one keyframe a fragment (fragment_seconds = 1)
    argv = ["ffmpeg", "-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", str(clip), "-t", str(seconds),
            "-an", "-c:v", "libx264", "-preset", PRESET, "-tune", TUNE, "-crf", str(CRF), "-g", gop,
            "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
            "-f", "segment", "-segment_time", str(SEGMENT_S), "-segment_format", "mp4",
            "-segment_format_options", "movflags=frag_keyframe+empty_moov+default_base_moof",
            "-reset_timestamps", "1", str(out / "seg%04d.mp4")]
    if live:
        k, g = LIVE["kbps"], str(round(LIVE["gop_s"] * fps))
        argv += ["-t", str(seconds), "-an", "-c:v", "libx264", "-preset", str(LIVE["preset"]), "-tune", "zerolatency",
                 "-b:v", f"{k}k",
                 "-maxrate", f"{k}k", "-bufsize", f"{int(k) // 2}k", "-g", g, "-keyint_min", g, "-sc_threshold", "0",
                 "-x264-params", "threads=2", "-pix_fmt", "yuv420p", "-f", "mp4",
                 "-movflags", "frag_every_frame+empty_moov+default_base_moof", str(out / "live.mp4")]
    return argv


def agent_config(root: Path, keys: Path, backend: str, clip: Path, broker: Any | None,
                 trust: Path | None = None) -> Path:
    """The agent's config for one run (a fresh vault and outbox each time)."""
    vault = root / "vault"
    text = f"""
[device]
id = "{DEVICE}"
site_id = "{SITE}"
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
        cert = broker.pki.client(DEVICE)
        text += f"""
[uplink]
enabled = true
outbox_path = "{root / 'outbox.sqlite'}"
require_subscriber = false
[uplink.mqtt]
broker = "{broker.url}"
client_id = "{DEVICE}"
[uplink.mqtt.tls]
ca_file = "{cert.ca}"
cert_file = "{cert.cert}"
key_file = "{cert.key}"
"""
        text += f'[uplink.commands]\ntrust_dir = "{trust}"\n' if trust else "[uplink.commands]\nenabled = false\n"
    cfg = root / "agent.toml"
    cfg.write_text(text)
    return cfg


def old_tree(ref: str, into: Path) -> Path | None:
    """The agent package of ``ref`` unpacked (git archive), or None when the ref does not exist. A folder
    holding an ``agent`` package is used as it is (an experiment not committed)."""
    if (Path(ref) / "agent").is_dir():
        return Path(ref).resolve()
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "-q", ref], capture_output=True).returncode:
        return None
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "agent"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def officer_trust(work: Path) -> tuple[Path, Path]:
    """An officer key (the viewer's) and the device's trust folder naming it with every permission."""
    from cryptography.hazmat.primitives import serialization

    from agent.customs.keys import init_officer

    trust, officer_dir = work / "trust", work / "officers" / OFFICER
    trust.mkdir(parents=True)
    key = init_officer(officer_dir, OFFICER)
    (trust / f"{OFFICER}.pem").write_bytes(key.cert.public_bytes(serialization.Encoding.PEM))
    (trust / "permissions.json").write_text(json.dumps({OFFICER: ["*"]}))
    return trust, officer_dir


def one_run(name: str, src: Path | None, viewer: bool, ctx: dict[str, Any], root: Path,
            args: argparse.Namespace) -> dict[str, float]:
    """One measured run of ``name`` (ffmpeg, or the agent code at ``src``), with a live viewer if asked."""
    if src is None:
        return measure(ffmpeg_argv(ctx["clip"], root, args.fps, args.seconds, live=viewer), dict(os.environ),
                       args.seconds, args.warmup, root)
    backend = "pyav" if (src / "agent" / "capture" / "pyav.py").is_file() else "opencv"  # older trees: OpenCV
    cfg = agent_config(root, ctx["keys"], backend, ctx["clip"], ctx["broker"], ctx["trust"] if viewer else None)
    argv = [sys.executable, "-c", LAUNCH, "run", "--config", str(cfg), "--seconds", str(args.seconds),
            "--drain-timeout", "5"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    if not viewer:
        return measure(argv, env, args.seconds, args.warmup, root)
    from benchmarks.bench_viewer import BenchViewer

    watcher = BenchViewer(ctx["broker"].mqtt_config(OFFICER, client_id=f"viewer-{root.name}"), ctx["officer_dir"],
                          SITE, DEVICE, seconds=args.seconds + 60)
    watcher.start()
    try:
        result = measure(argv, env, args.seconds, args.warmup, root, ready=lambda: watcher.streaming)
    finally:
        stats = watcher.stop()
    if stats.fragments == 0 or stats.refused:
        raise RuntimeError(f"{name}: the viewer got {stats.fragments} fragments, {stats.refused} refused "
                           f"({stats.error})")
    return {**result, "viewer_fragments": float(stats.fragments), "viewer_mbit_s": stats.bytes * 8 / 1e6 /
            max(1.0, args.seconds - (stats.first_fragment_after_s or 0.0))}


def table(title: str, med: dict[str, dict[str, float]], rss_goal: float) -> list[str]:
    peer = med["ffmpeg"]
    lines = [title, f"{'':12s} {'CPU s/s':>8s} {'peak RSS':>9s} {'threads':>8s} {'CPU x':>6s} {'RSS x':>6s}"]
    for n, m in med.items():
        lines.append(f"{n:12s} {m['cpu_s_per_s']:8.3f} {m['rss_mb']:7.0f} MB {m['threads']:8.0f} "
                     f"{m['cpu_s_per_s'] / peer['cpu_s_per_s']:6.2f} {m['rss_mb'] / peer['rss_mb']:6.2f}")
    new = med["new"]
    lines.append(f"goals (new): CPU <= {GOALS['cpu_ratio']}x ffmpeg: "
                 f"{'met' if new['cpu_s_per_s'] <= GOALS['cpu_ratio'] * peer['cpu_s_per_s'] else 'MISSED'}; "
                 f"peak RSS <= {rss_goal:g} MB: {'met' if new['rss_mb'] <= rss_goal else 'MISSED'}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="each run's length (default 40)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds excluded at the start (default 8)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fps", type=float, default=10.0, help="the file's frame rate (default 10, the camera default)")
    ap.add_argument("--old-ref", default="main",
                    help="git refs (or folders holding an agent package) of other code, comma-separated (default main)")
    ap.add_argument("--no-old", action="store_true", help="skip the old code")
    ap.add_argument("--no-uplink", action="store_true", help="no MQTT uplink (default: mTLS Mosquitto if installed)")
    ap.add_argument("--viewer", action="store_true", help="also rounds with one live H.264 viewer (needs the uplink)")
    ap.add_argument("--viewer-only", action="store_true", help="only the rounds with a live viewer")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    modes = [m for m, on in ((False, not args.viewer_only), (True, args.viewer or args.viewer_only)) if on]

    work = Path(tempfile.mkdtemp(prefix="video-bench-"))
    ctx: dict[str, Any] = {"broker": None, "trust": None}
    runs: dict[bool, dict[str, list[dict[str, float]]]] = {}
    refs: list[str] = []
    try:
        ctx["clip"] = make_clip(work / "clip720.mp4", args.fps)
        ctx["keys"] = work / "keys"
        subprocess.run([sys.executable, "-c", LAUNCH, "keys", "init", "--key-dir", str(ctx["keys"]), "--device-id",
                        DEVICE], check=True, capture_output=True, cwd=work,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        if not args.no_uplink and shutil.which("mosquitto"):
            from tests.support.broker import Mosquitto

            ctx["broker"] = Mosquitto(work / "broker", tls=True, officers=(OFFICER,), autosave_interval=60)
            ctx["broker"].start()
        if True in modes:
            if ctx["broker"] is None:
                raise SystemExit("--viewer needs the uplink (Mosquitto installed, no --no-uplink)")
            ctx["trust"], ctx["officer_dir"] = officer_trust(work)
        variants: dict[str, Path | None] = {"new": REPO}
        for i, ref in enumerate([] if args.no_old else [r for r in args.old_ref.split(",") if r]):
            tree = old_tree(ref, work / f"old{i}")
            if tree is not None:
                variants[f"old:{Path(ref).name}"[:12]] = tree
                refs.append(ref)
        variants["ffmpeg"] = None
        names = list(variants)
        for viewer in modes:
            runs[viewer] = {n: [] for n in names}
            for rep in range(args.reps):
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    root = work / f"{name.replace(':', '-')}-{rep}-{int(viewer)}"
                    root.mkdir()
                    result = one_run(name, variants[name], viewer, ctx, root, args)
                    runs[viewer][name].append(result)
                    print(f"round {rep + 1}{' viewer' if viewer else ''} {name:12s} cpu {result['cpu_s_per_s']:.3f} "
                          f"s/s  rss {result['rss_mb']:.0f} MB  threads {result['threads']:.0f}  window "
                          f"{result['window_s']:.0f} s", file=sys.stderr, flush=True)
                    shutil.rmtree(root, ignore_errors=True)
    finally:
        if ctx["broker"] is not None:
            ctx["broker"].stop()
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    med = {v: {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in by.items()}
           for v, by in runs.items()}
    report: dict[str, Any] = {
        "setup": {"size": f"{W}x{H}", "fps": args.fps, "seconds": args.seconds, "warmup": args.warmup,
                  "reps": args.reps, "x264": {"preset": PRESET, "tune": TUNE, "crf": CRF, "bf": 0},
                  "segment_s": SEGMENT_S, "uplink": ctx["broker"] is not None, "old_refs": refs, "live": LIVE,
                  "loadavg_at_end": load},
        "recording": med.get(False), "with_viewer": med.get(True),
        "goals": {"cpu_ratio_max": GOALS["cpu_ratio"], "rss_mb_max": GOALS["rss_mb"],
                  "viewer_rss_mb_max": GOALS["viewer_rss_mb"]},
        "runs": {("with_viewer" if v else "recording"): r for v, r in runs.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    head = (f"{W}x{H} @ {args.fps:g} fps file camera, {args.seconds:g} s runs, medians of {args.reps}"
            f"{', mTLS uplink' if ctx['broker'] is not None else ''}; load average at the end "
            f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(head)
    if False in med:
        print("\n".join(table("recording:", med[False], GOALS["rss_mb"])))
    if True in med:
        print("\n".join(table("recording + one live H.264 viewer (ffmpeg: both encodes):", med[True],
                              GOALS["viewer_rss_mb"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())

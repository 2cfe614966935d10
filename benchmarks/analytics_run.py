"""Anti-falsification analytics measured through the real `evidence-agent run`, not the class alone.

Each clip is the camera: `capture.backend = "opencv"` reading the file in real time (the analytics time
their conditions on the frames' clock, so the file is paced, not read at full speed), video and
analytics on, events read back from the sealed records.

* clean (every onset is a false alarm; per hour, with the Poisson 95 % upper bound):
  - the three shared real clips as recorded (Intel sample videos, CC BY 4.0);
  - night: each real clip made grey (IR-like), darkened to 35 % and given Gaussian noise sigma 3 (a camera's
    gain at night), re-encoded libx264 crf 23, a keyframe a second;
  - still scenes: an empty room and an empty car park, each the temporal median of a real clip's empty
    frames (one-by-one-person-detection 0-6 s; car-detection 0-3 s) plus, on every frame, one of that
    stretch's own noise fields (frame - median) at a random offset, re-encoded libx264 crf 23.
* tampered copies of each real clip (libx264 crf 23, or MPEG-4, a keyframe a second), one tamper each:
  covered, obstructed (a dark out-of-focus board over the left 55 %), frozen (one frame repeated), turned
  (shifted 6 %/3 %), each from 8 s for up to 12-15 s; looped replay: from 20 s (a short clip: half-way)
  the clip from its start again, up to 20 s. A tamper never runs past the clip's end and the clip is never
  looped (that would be a real replay). Detection = the matching onset within the tamper (+3 s); delay =
  onset - tamper start.

    python benchmarks/analytics_run.py [--shared /work/shared] [--parallel 3] [--still-minutes 12] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLIPS = ["car-detection.mp4", "one-by-one-person-detection.mp4", "bottle-detection.mp4"]
# (tamper, event type that must be raised, tamper length s); each tamper starts at TAMPER_AT
TAMPERS = [("covered", "uniform", 12.0), ("obstructed", "obstructed", 15.0), ("frozen", "frozen", 15.0),
           ("turned", "scene_change", 15.0), ("replayed", "replayed", 20.0)]
TAMPER_AT = 8.0  # replayed: REPLAY_AT, replaying the clip from its start
REPLAY_AT = 20.0
AFTER_S = 6.0
BLIND = ("too_dark", "uniform")
STILL = [("still-room", "one-by-one-person-detection.mp4", 0, 60), ("still-car-park", "car-detection.mp4", 0, 36)]
def _writer(path: Path, codec: str, fps: float, w: int, h: int) -> Any:
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.gop_size = max(1, round(fps))
    if codec == "libx264":
        stream.options = {"preset": "veryfast", "crf": "23"}
    else:
        stream.bit_rate = 2_000_000
    return container, stream


def _write(frames: Any, path: Path, codec: str, fps: float) -> Path:
    import av

    container = stream = None
    for img in frames:
        if container is None:
            container, stream = _writer(path, codec, fps, img.shape[1], img.shape[0])
        assert stream is not None
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")):
            container.mux(packet)
    assert container is not None and stream is not None
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def _frames(path: Path) -> Any:
    """Decoded frames of ``path``, one at a time (the clips are too large to hold decoded)."""
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                return
            yield img
    finally:
        cap.release()


def _looped_source(src: Path) -> Any:
    while True:
        yield from _frames(src)


def tamper_window(src: Path, tamper: str, length: float) -> tuple[float, float]:
    """(start, length) s of ``tamper`` in the copy of ``src``: it never runs past the clip's own end (a clip
    played twice would be a real replay)."""
    clip = _length(src)[0]
    start = min(REPLAY_AT, (clip - AFTER_S) / 2) if tamper == "replayed" else TAMPER_AT
    start = round(start, 1)
    length = min(length, clip - start - AFTER_S)
    # a replay repeats what was seen before it started: never longer than that (whole frames, rounded down)
    return start, min(length, math.floor(start * 10) / 10 - 0.1) if tamper == "replayed" else length


def tampered_copy(src: Path, out: Path, tamper: str, length: float, codec: str) -> tuple[Path, float]:
    """``src`` from its start, ``tamper`` in its window, then AFTER_S s of it untampered."""
    _, fps = _length(src)
    rng = np.random.default_rng(1)
    at, length = tamper_window(src, tamper, length)
    start, end = round(at * fps), round((at + length) * fps)
    total = end + round(AFTER_S * fps)
    history: list[Any] = []

    def gen() -> Any:
        frozen = None
        source = _looped_source(src)
        for i in range(total):
            img = next(source)
            if start <= i < end:
                h, w = img.shape[:2]
                if tamper == "covered":
                    img = np.clip(np.full(img.shape, (18, 20, 26), np.int16) + rng.integers(-2, 3, img.shape), 0,
                                  255).astype(np.uint8)
                elif tamper == "obstructed":
                    img = img.copy()
                    board = np.full((h, int(w * 0.55), 3), (38, 40, 44), np.float32)
                    board += cv2.GaussianBlur(rng.normal(0, 6, board.shape).astype(np.float32), (0, 0), 9)
                    img[:, : board.shape[1]] = np.clip(board + rng.normal(0, 1.5, board.shape), 0, 255)
                elif tamper == "frozen":
                    frozen = img if frozen is None else frozen
                    img = frozen
                elif tamper == "turned":
                    m = np.float32([[1, 0, 0.06 * w], [0, 1, 0.03 * h]])
                    img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
                elif tamper == "replayed":  # the clip from its start, played again
                    img = history[i - start]
            if i < start:
                history.append(img)
            yield img

    return _write(gen(), out, codec, fps), fps


def still_clip(src: Path, first: int, count: int, out: Path, seconds: float) -> Path:
    """A still scene with a real camera's noise: the median of ``count`` empty frames of ``src`` plus, per frame,
    one of their own noise fields (frame - median) rolled by a random offset; libx264 crf 23."""
    _, fps = _length(src)
    frames = [f.astype(np.float32) for _, f in zip(range(first + count), _frames(src), strict=False)][first:]
    median = np.median(np.stack(frames), axis=0)
    noise = [f - median for f in frames]
    rng = np.random.default_rng(7)

    def gen() -> Any:
        for _ in range(round(seconds * fps)):
            field = np.roll(noise[int(rng.integers(len(noise)))], (int(rng.integers(-60, 61)),
                                                                   int(rng.integers(-60, 61))), axis=(0, 1))
            yield np.clip(median + field, 0, 255).astype(np.uint8)

    return _write(gen(), out, "libx264", fps)


def night_clip(src: Path, out: Path) -> Path:
    """``src`` made grey, darkened to 35 % and given Gaussian noise sigma 3 (gain at night); libx264 crf 23."""
    _, fps = _length(src)
    rng = np.random.default_rng(5)

    def gen() -> Any:
        for img in _frames(src):
            g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) * 0.35 + rng.normal(0, 3, img.shape[:2])
            yield cv2.cvtColor(np.clip(g, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)

    return _write(gen(), out, "libx264", fps)


def run_through_agent(clip: Path, work: Path, seconds: float) -> list[dict[str, Any]]:
    """`evidence-agent run` on the clip (no uplink, no anchoring); the sealed event records."""
    from agent.hostsetup.provision import to_toml
    from agent.signing.keys import init_identity
    from agent.signing.records import parse_sidecar

    work.mkdir(parents=True)
    init_identity(work / "keys", "bench-cam", "Bench")
    config = work / "agent.toml"
    config.write_text(to_toml({
        "device": {"id": "bench-cam", "site_id": "bench"}, "identity": {"key_dir": str(work / "keys")},
        "vault": {"path": str(work / "vault")}, "gps": {"source": "simulated"},
        "capture": {"backend": "opencv", "source": str(clip), "still_interval_s": 3600},
        "video": {"enabled": True, "segment_seconds": 30, "c2pa": {"enabled": False}},
        "anchor": {"enabled": False}}))
    res = subprocess.run([sys.executable, "-m", "agent.device.cli", "run", "--config", str(config),
                          "--seconds", str(seconds + 30)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=seconds + 120)
    if res.returncode != 0:
        raise RuntimeError(f"run failed on {clip}: {res.stderr[-2000:]}")
    recs = [parse_sidecar(p.read_bytes(), str(p)).record for p in (work / "vault").rglob("*.event.rec")]
    return [r["extra"] for r in recs if r["extra"].get("phase") == "onset"]


def _length(path: Path) -> tuple[float, float]:
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 10.0
    n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    return n / fps, fps


def poisson_upper_95(events: int, hours: float) -> float:
    """One-sided 95 % upper bound on a Poisson rate (0 events in T hours: 3.0/T): the mean at which seeing
    ``events`` or fewer has probability 5 %, found by bisection."""
    def p_at_most(mean: float) -> float:
        term = total = math.exp(-mean)
        for k in range(1, events + 1):
            term *= mean / k
            total += term
        return total

    lo, hi = 0.0, 10.0 + 10.0 * events
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_at_most(mid) > 0.05 else (lo, mid)
    return hi / hours if hours else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("EVIDENCE_AGENT_SHARED") or str(REPO.parent / "shared"))
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--still-minutes", type=float, default=12.0, help="length of each made still scene")
    ap.add_argument("--work", help="folder for the made clips (kept and reused) and the runs; default a temp dir")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    video = Path(args.shared) / "data" / "video"
    if not all((video / c).is_file() for c in CLIPS):
        print(f"shared clips not found in {video}: nothing to measure")
        return 0
    tmp = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="analytics-run-"))
    tmp.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir=tmp))

    def made(path: Path, make: Any) -> Path:
        """``path`` if an earlier run made it, else ``make(path)`` (written under a temporary name first)."""
        if not path.exists():
            part = path.with_name("part-" + path.name)
            make(part)
            part.rename(path)
        return path

    jobs: list[tuple[str, str, Path, float, float]] = []  # (group, name, clip, seconds, fps)
    windows: dict[str, tuple[float, float]] = {}  # tampered job -> (start, length) s
    for i, name in enumerate(CLIPS):
        src = video / name
        jobs.append(("clean", name, src, *_length(src)))
        night = made(tmp / f"night-{name}", lambda p, src=src: night_clip(src, p))
        jobs.append(("clean", f"night {name}", night, *_length(night)))
        for j, (tamper, _, length) in enumerate(TAMPERS):
            codec = "mpeg4" if (i + j) % 3 == 0 else "libx264"
            copy = made(tmp / f"{tamper}-{codec}-{name}",
                        lambda p, src=src, tamper=tamper, length=length, codec=codec:
                        tampered_copy(src, p, tamper, length, codec))
            jobs.append(("tampered", f"{tamper} {name} ({codec})", copy, *_length(copy)))
            windows[f"{tamper} {name} ({codec})"] = tamper_window(src, tamper, length)
    for label, name, first, count in STILL:
        clip = made(tmp / f"{label}-{args.still_minutes:g}min.mp4",
                    lambda p, name=name, first=first, count=count: still_clip(video / name, first, count, p,
                                                                              args.still_minutes * 60))
        jobs.append(("clean", f"{label} (from {name})", clip, *_length(clip)))

    def one(job: tuple[str, str, Path, float, float]) -> tuple[str, str, float, float, list[dict[str, Any]]]:
        group, name, clip, seconds, fps = job
        return group, name, seconds, fps, run_through_agent(clip, runs / f"run-{jobs.index(job)}", seconds)

    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(one, jobs))
    report: dict[str, Any] = {"clean": {}, "tampered": {}}
    for group, name, seconds, fps, onsets in results:
        times = [(e["type"], round(int(e.get("frame_index") or 0) / fps, 1), e.get("confidence")) for e in onsets]
        if group == "clean":
            report["clean"][name] = {"seconds": round(seconds, 1), "false_alarms": times}
            continue
        tamper = name.split()[0]
        want = next(t[1] for t in TAMPERS if t[0] == tamper)
        at, length = windows[name]
        hit = next(((t, c) for k, t, c in times if k == want and at <= t <= at + length + 3.0), None)
        others = [(k, t) for k, t, _ in times if not (hit and (k, t) == (want, hit[0]))]
        during = [x for x in others if at <= x[1] <= at + length + 3.0]
        report["tampered"][name] = {
            "tamper_s": [at, round(at + length, 1)],
            "detected": hit is not None, "delay_s": None if hit is None else round(hit[0] - at, 1),
            "confidence": None if hit is None else hit[1], "also_during": during,
            "false_alarms": [x for x in others if x not in during]}
    clean_s = sum(v["seconds"] for v in report["clean"].values())
    clean_fa = sum(len(v["false_alarms"]) for v in report["clean"].values())
    hours = clean_s / 3600
    per_tamper: dict[str, Any] = {}
    for tamper, _, _ in TAMPERS:
        rows = [v for k, v in report["tampered"].items() if k.split()[0] == tamper]
        delays = [v["delay_s"] for v in rows if v["delay_s"] is not None]
        per_tamper[tamper] = {"detected": sum(v["detected"] for v in rows), "of": len(rows),
                              "delay_s_max": max(delays, default=None),
                              "delay_s_mean": round(sum(delays) / len(delays), 1) if delays else None}
    report["summary"] = {
        "clean_minutes": round(clean_s / 60, 1), "false_alarms": clean_fa,
        "false_alarms_per_hour": round(clean_fa / hours, 2) if hours else None,
        "upper_95_per_hour": round(poisson_upper_95(clean_fa, hours), 2),
        "tampered_false_alarms": sum(len(v["false_alarms"]) for v in report["tampered"].values()),
        "per_tamper": per_tamper}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, v in report["clean"].items():
            print(f"clean    {name}: {v['seconds']} s, false alarms {v['false_alarms'] or 'none'}")
        for name, v in report["tampered"].items():
            print(f"tampered {name}: detected {v['detected']} after {v['delay_s']} s (confidence {v['confidence']}),"
                  f" also during {v['also_during'] or 'none'}, false alarms {v['false_alarms'] or 'none'}")
        s = report["summary"]
        print(f"through `run`: {s['false_alarms']} false alarms in {s['clean_minutes']} min of clean footage = "
              f"{s['false_alarms_per_hour']}/h (95 % upper bound {s['upper_95_per_hour']}/h)")
        for tamper, v in per_tamper.items():
            print(f"  {tamper:10s} detected {v['detected']}/{v['of']}, delay mean {v['delay_s_mean']} s, "
                  f"max {v['delay_s_max']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

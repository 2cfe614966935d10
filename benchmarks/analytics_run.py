"""Anti-falsification analytics measured through the real `evidence-agent run`, not the class alone.

Each clip is the camera: `capture.backend = "opencv"` reading the file in real time (the analytics time
their conditions on the clock), video and analytics on, events read back from the sealed records.

* clean: the shared real clips as recorded, plus a busy synthetic scene made here (many moving objects,
  a swaying textured region, light flicker; no busy real footage is available offline). Every onset is a
  false alarm; reported per hour of footage.
* tampered copies: each clip looped to >= 75 s and re-encoded (libx264 crf 23 or MPEG-4, a keyframe a
  second) with cover 10-16 s, dark 22-28 s, frozen 34-43 s (one frame repeated, so the freeze passes
  through the encoder) and camera moved from 52 s to the end. Detection = the matching onset within the
  tamper (+3 s); delay = onset time - tamper start. Other onsets count as false alarms.

    python benchmarks/analytics_run.py [--shared /work/shared] [--parallel 3] [--json]
"""

from __future__ import annotations

import argparse
import json
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
TAMPERS = [("uniform", 10.0, 16.0), ("too_dark", 22.0, 28.0), ("frozen", 34.0, 43.0), ("scene_change", 52.0, 1e9)]
MIN_LENGTH_S = 75.0


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


def tampered_copy(src: Path, out: Path, codec: str) -> tuple[Path, float]:
    length, fps = _length(src)
    n = round(length * fps)
    first = next(_frames(src))
    rng = np.random.default_rng(1)
    total = max(n, int(MIN_LENGTH_S * fps) + 1)
    h, w = first.shape[:2]
    shift = np.float32([[1, 0, 0.06 * w], [0, 1, 0.03 * h]])

    def looped() -> Any:
        while True:
            yield from _frames(src)

    def gen() -> Any:
        frozen = None
        for i, img in zip(range(total), looped(), strict=False):
            t = i / fps
            if 10 <= t < 16:
                img = np.clip(np.full(img.shape, (18, 20, 26), np.int16) + rng.integers(-2, 3, img.shape), 0,
                              255).astype(np.uint8)
            elif 22 <= t < 28:
                img = (img.astype(np.float32) * 0.08).astype(np.uint8)
            elif 34 <= t < 43:
                frozen = img if frozen is None else frozen
                img = frozen
            elif t >= 52:
                img = cv2.warpAffine(img, shift, (w, h), borderMode=cv2.BORDER_REFLECT)
            yield img

    return _write(gen(), out, codec, fps), fps


def busy_clip(out: Path, seconds: float = 60.0, fps: float = 15.0) -> Path:
    """Synthetic busy scene: 40 objects crossing, a swaying textured band (foliage in wind), light flicker."""
    rng = np.random.default_rng(3)
    w, h = 640, 360
    small = rng.integers(0, 256, size=(36, 64, 3), dtype=np.uint8)
    base = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(-20, 21, size=(h, w, 1))
    base = np.clip(base.astype(np.int16) + fine, 0, 255).astype(np.uint8)
    leaves = cv2.resize(rng.integers(0, 256, size=(20, 160, 3), dtype=np.uint8), (w * 2, 90),
                        interpolation=cv2.INTER_NEAREST)
    objs = [(rng.uniform(0, w), rng.uniform(100, h - 30), rng.uniform(-9, 9), rng.uniform(-2, 2),
             tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(12, 50))) for _ in range(40)]

    def gen() -> Any:
        for i in range(int(seconds * fps)):
            img = base.copy()
            sway = int(40 + 30 * np.sin(i / 4.0) + rng.integers(-4, 5))
            img[0:90] = leaves[:, sway:sway + w]
            for x0, y0, vx, vy, colour, size in objs:
                x, y = int((x0 + vx * i) % w), int((y0 + vy * i) % (h - size))
                cv2.rectangle(img, (x, y), (x + size, y + size // 2), colour, -1)
            gain = 1.0 + 0.08 * np.sin(i / 3.0)
            noise = rng.integers(-3, 4, size=img.shape)
            yield np.clip(img.astype(np.float32) * gain + noise, 0, 255).astype(np.uint8)

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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("EVIDENCE_AGENT_SHARED") or str(REPO.parent / "shared"))
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    video = Path(args.shared) / "data" / "video"
    tmp = Path(tempfile.mkdtemp(prefix="analytics-run-"))
    jobs: list[tuple[str, str, Path, float, float]] = []  # (group, name, clip, seconds, fps)
    for i, name in enumerate(CLIPS):
        src = video / name
        if not src.exists():
            print(f"skipping {name}: not found in {video}")
            continue
        jobs.append(("clean", name, src, *_length(src)))
        codec = "mpeg4" if i == 1 else "libx264"
        copy, fps = tampered_copy(src, tmp / f"tampered-{codec}-{name}", codec)
        jobs.append(("tampered", f"{name} ({codec})", copy, _length(copy)[0], fps))
    busy = busy_clip(tmp / "busy-synthetic.mp4")
    jobs.append(("clean", "busy-synthetic.mp4 (made here)", busy, *_length(busy)))

    def one(job: tuple[str, str, Path, float, float]) -> tuple[str, str, float, float, list[dict[str, Any]]]:
        group, name, clip, seconds, fps = job
        return group, name, seconds, fps, run_through_agent(clip, tmp / f"run-{jobs.index(job)}", seconds)

    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(one, jobs))
    report: dict[str, Any] = {"clean": {}, "tampered": {}}
    for group, name, seconds, fps, onsets in results:
        times = [(e["type"], round(int(e.get("frame_index") or 0) / fps, 1)) for e in onsets]
        if group == "clean":
            report["clean"][name] = {"seconds": round(seconds, 1), "false_alarms": times}
            continue
        found: dict[str, float | None] = {}
        used = set()
        for kind, start, end in TAMPERS:
            hit = next((t for k, t in times if k == kind and start <= t <= min(end, seconds) + 3.0), None)
            found[kind] = None if hit is None else round(hit - start, 1)
            if hit is not None:
                used.add((kind, hit))
        # a covered lens is dark too, a dark view may be uniform, and neither changes (frozen): same tamper
        blind = [(k, t) for k, t in times if (k, t) not in used and k in ("too_dark", "uniform", "frozen")
                 and any(s <= t <= e + 3 for _, s, e in TAMPERS[:2])]
        stray = [(k, t) for k, t in times if (k, t) not in used and (k, t) not in blind]
        report["tampered"][name] = {"seconds": round(seconds, 1), "delay_s": found, "while_blind": blind,
                                    "false_alarms": stray}
    clean_s = sum(v["seconds"] for v in report["clean"].values())
    clean_fa = sum(len(v["false_alarms"]) for v in report["clean"].values())
    detected = [d for v in report["tampered"].values() for d in v["delay_s"].values()]
    report["summary"] = {
        "clean_hours": round(clean_s / 3600, 4), "false_alarms": clean_fa,
        "false_alarms_per_hour": round(clean_fa / (clean_s / 3600), 2) if clean_s else None,
        "detected": sum(d is not None for d in detected), "tampers": len(detected),
        "max_delay_s": max((d for d in detected if d is not None), default=None)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, v in report["clean"].items():
            print(f"clean    {name}: {v['seconds']} s, false alarms {v['false_alarms'] or 'none'}")
        for name, v in report["tampered"].items():
            print(f"tampered {name}: delay s {v['delay_s']}, also while covered/dark {v['while_blind'] or 'none'}, "
                  f"false alarms {v['false_alarms'] or 'none'}")
        s = report["summary"]
        print(f"through `run`: {s['false_alarms']} false alarms in {s['clean_hours']} h of clean footage "
              f"({s['false_alarms_per_hour']}/h); detected {s['detected']}/{s['tampers']} tampers, "
              f"longest delay {s['max_delay_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The digital zoom's crop-and-scale on the frame hub's thread, against the peer a user would pick (OpenCV).

Backends without their own zoom (synthetic, OpenCV, PyAV) crop each frame and scale it back to the stream size
before fan-out (``agent.capture.zoom.crop_scale``: PyAV swscale, bilinear, I420 kept). The peer is OpenCV's
``cv2.resize`` (INTER_LINEAR) on the three cropped I420 planes, what one would write with OpenCV at hand (the
device process does not load OpenCV). Rounds interleave the two, medians of per-frame times, ratios printed.
picamera2 zooms in the ISP (ScalerCrop) and costs nothing here. x86 VM figures, never Pi figures.

    python benchmarks/zoom_bench.py [--size 1280x720] [--rounds 15] [--frames 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import numpy as np

from agent.capture.pixels import bgr_to_i420
from agent.capture.zoom import crop_rect, crop_scale
from agent.core.model import Frame
from agent.core.view import ViewRegion


def opencv_crop_scale(img: np.ndarray, width: int, height: int, region: ViewRegion) -> np.ndarray:
    x, y, w, h = crop_rect(region, width, height)
    q = height // 4
    yy = img[:height]
    uu = img[height:height + q].reshape(height // 2, width // 2)
    vv = img[height + q:].reshape(height // 2, width // 2)
    out_y = cv2.resize(yy[y:y + h, x:x + w], (width, height), interpolation=cv2.INTER_LINEAR)
    out_u = cv2.resize(uu[y // 2:(y + h) // 2, x // 2:(x + w) // 2], (width // 2, height // 2),
                       interpolation=cv2.INTER_LINEAR)
    out_v = cv2.resize(vv[y // 2:(y + h) // 2, x // 2:(x + w) // 2], (width // 2, height // 2),
                       interpolation=cv2.INTER_LINEAR)
    return np.concatenate([out_y.reshape(-1), out_u.reshape(-1), out_v.reshape(-1)]).reshape(height * 3 // 2, width)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.split("x"))
    rng = np.random.default_rng(1)
    bgr = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 2)
    frame = Frame(image=bgr_to_i420(bgr), index=0, wall_ns=0, mono_ns=0, fmt="yuv420p")
    regions = [ViewRegion.centred(0.5, 0.5, 2.0), ViewRegion.centred(0.3, 0.6, 3.0), ViewRegion.centred(0.5, 0.5, 8.0)]
    ours: list[float] = []
    peer: list[float] = []
    for r in range(a.rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for which in order:
            t0 = time.perf_counter()
            for i in range(a.frames):
                region = regions[i * len(regions) // a.frames]  # a zoom holds for many frames
                if which == 0:
                    crop_scale(frame, region)
                else:
                    opencv_crop_scale(frame.image, width, height, region)
            per_frame_ms = (time.perf_counter() - t0) * 1000 / a.frames
            (ours if which == 0 else peer).append(per_frame_ms)
    result = {"size": a.size, "rounds": a.rounds, "frames_per_round": a.frames,
              "pyav_swscale_ms": round(statistics.median(ours), 3),
              "opencv_resize_ms": round(statistics.median(peer), 3),
              "ratio_ours_to_opencv": round(statistics.median(ours) / statistics.median(peer), 2)}
    if a.json:
        print(json.dumps(result))
    else:
        print(f"crop + scale back to {a.size} I420, median per frame over {a.rounds} interleaved rounds: "
              f"PyAV swscale {result['pyav_swscale_ms']} ms, OpenCV resize {result['opencv_resize_ms']} ms "
              f"(ratio {result['ratio_ours_to_opencv']}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Video test helpers: synthetic frame runs and an ffprobe summary."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.core.clock import ManualClock
from agent.core.model import Frame

W, H, FPS = 160, 120, 10.0
# The core verifier's one finding on a recorder run whose manual clock is shared by several sources.
KNOWN_CORE_FINDING = "monotonic capture time runs backwards"


def make_frames(clock: ManualClock, n: int, *, start: int = 0) -> list[Frame]:
    frames = []
    rng = np.random.default_rng(start)
    base = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    for i in range(start, start + n):
        img = np.roll(base, i * 2, axis=1)
        frames.append(Frame(image=img, index=i, wall_ns=clock.wall_ns(), mono_ns=clock.mono_ns()))
        clock.advance(1 / FPS)
    return frames


def ffprobe(path: Path) -> dict[str, Any]:
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed")
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,nb_read_frames,width,height:format=duration", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    s = data["streams"][0]
    return {"codec": s["codec_name"], "frames": int(s["nb_read_frames"]), "width": s["width"],
            "duration": float(data["format"]["duration"])}


def covered_lens_clip(path: Path, *, size: str, seconds: int, covered: tuple[int, int], timeout: float = 180) -> None:
    """An H.264 test-pattern clip at 10 fps whose picture is black ("lens covered") from ``covered[0]`` to
    ``covered[1]`` seconds, made with the ffmpeg CLI (skips the test without it)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    start, end = covered
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=10:duration={seconds}", "-vf",
                    f"drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(t,{start},{end})'",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=timeout)

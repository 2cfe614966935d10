"""The device process stays light: `evidence-agent run` loads no customs-wing module, no OpenCV and no anchor
client its config does not name, and `evidence-officer` without the customs extra says which extra to install
(one line, exit 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
CUSTOMS_DEPS = ("weasyprint", "jinja2", "fastapi", "uvicorn", "websockets", "psycopg")
ANCHOR_CLIENTS = ("rfc3161_client", "sigstore_models")  # TSA and Rekor: these configs name neither


def _config(tmp_path: Path, capture: str) -> Path:
    keys = tmp_path / "keys"
    subprocess.run([str(BIN / "evidence-agent"), "keys", "init", "--key-dir", str(keys), "--device-id", "cam-0001"],
                   check=True, capture_output=True, timeout=120)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f"""
[device]
id = "cam-0001"
site_id = "site-0001"
[identity]
key_dir = "{keys}"
[vault]
path = "{tmp_path / 'vault'}"
[capture]
{capture}
[gps]
source = "simulated"
[video]
enabled = true
segment_seconds = 2
""")
    return cfg


def _loaded_modules(cfg: Path) -> set[str]:
    """Every module the real process imported while it ran (``python -X importtime`` via its env variable)."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    run = subprocess.run([str(BIN / "evidence-agent"), "run", "--config", str(cfg), "--seconds", "5"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "segment" in run.stdout, run.stdout  # it really recorded video
    return {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", run.stderr, re.M)}


def _assert_light(mods: set[str]) -> None:
    assert "numpy" in mods and "av" in mods  # the parse found the imports
    assert "cv2" not in mods
    assert not {m for m in mods if m.startswith("agent.customs")}
    assert not {m for m in mods if m.split(".")[0] in CUSTOMS_DEPS}
    assert not {m for m in mods if m.split(".")[0] in ANCHOR_CLIENTS}


def test_run_with_the_synthetic_camera_loads_no_opencv_and_no_customs_module(tmp_path: Path) -> None:
    _assert_light(_loaded_modules(_config(tmp_path, 'backend = "synthetic"\nwidth = 320\nheight = 240\nfps = 10')))


def test_officer_without_the_customs_extra_names_it_in_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()  # a device installation: the customs extra's modules cannot be found
    (site / "sitecustomize.py").write_text(
        "import sys\nfor name in ('fastapi', 'weasyprint'):\n    sys.modules[name] = None\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    run = subprocess.run([str(BIN / "evidence-officer"), "ingest", "--help"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "'customs' extra" in lines[0] and "fastapi" in lines[0], run.stderr
    assert "evidence-agent[customs]" in lines[0]


def test_run_with_a_video_file_through_pyav_loads_no_opencv(tmp_path: Path) -> None:
    import av
    import numpy as np

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(30):
            frame = np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode(None))
    _assert_light(_loaded_modules(_config(tmp_path, f'backend = "pyav"\nsource = "{clip}"\nloop = true')))


def test_the_picamera2_path_imports_no_opencv() -> None:
    """The picamera2 backend and its native recorder (the Pi's path) with the runtime: no cv2 among their imports."""
    code = ("import sys; import agent.device.runtime, agent.capture.picamera2, agent.video.picamera2_recorder, "
            "agent.video.service, agent.video.analytics; print(sorted(m for m in sys.modules if m == 'cv2' "
            "or m.startswith('agent.customs')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"

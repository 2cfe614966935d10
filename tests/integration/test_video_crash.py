"""kill -9 of a recording agent mid-segment: closed segments stay intact, the open fragmented MP4 is
readable up to its last fragment, a restart lists it as an orphan, and recording resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.core.clock import ManualClock, SystemClock
from agent.device.sealer import Sealer
from agent.device.sensors import Sensors
from agent.evidence.vault import Vault
from agent.signing.c2pa import check_c2pa
from agent.signing.keys import DeviceIdentity
from agent.signing.verify import check
from agent.video.service import VideoService
from agent.video.settings import VideoConfig
from agent.video.verify_segments import segment_checker
from tests.support.media import KNOWN_CORE_FINDING, ffprobe, make_frames

REPO = Path(__file__).resolve().parents[2]
FPS = 15.0
CFG = dict(segment_seconds=1, fragment_seconds=0.2, fps=FPS, encoder="libx264", preset="ultrafast")

CHILD = """
import sys, time
from pathlib import Path
from agent.capture.base import CaptureSettings
from agent.capture.synthetic import SyntheticBackend
from agent.core.clock import ManualClock, SystemClock
from agent.device.sealer import Sealer
from agent.device.sensors import Sensors
from agent.signing.keys import load_identity
from agent.evidence.vault import Vault
from agent.video.recorder import backend_frames
from agent.video.service import VideoService
from agent.video.settings import VideoConfig
vault = Vault(Path(sys.argv[1]))
identity = load_identity(Path(sys.argv[2]))
clock = SystemClock()
sensors = Sensors(clock)
sealer = Sealer(vault, identity, device_id="test-device", site_id="test-site")
sealer.start(sensors.moment())
FPS = float(sys.argv[4])
svc = VideoService(VideoConfig(**eval(sys.argv[3])), sealer=sealer, vault=vault, identity=identity,
                   sensors=sensors, device_id="test-device", site_id="test-site",
                   on_sealed=lambda item: print("sealed", item.kind, item.seq, flush=True))
svc.start()
cam = SyntheticBackend(CaptureSettings(width=160, height=120, fps=FPS, realtime=True), clock)
cam.open()
svc.run_from(backend_frames(cam))
print("recording", flush=True)
time.sleep(120)
"""


def test_kill_9_mid_segment_then_restart(tmp_path: Path, key_dir: Path, identity: DeviceIdentity) -> None:
    vault_dir = tmp_path / "vault"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(vault_dir), str(key_dir), repr(CFG), str(FPS)],
                            stdout=subprocess.PIPE, text=True, env=env)
    sealed_segments = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while sealed_segments < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            sealed_segments += line.startswith("sealed segment")
        assert sealed_segments == 2, "the child did not seal two segments"
        time.sleep(0.7)  # well into the third segment: a few fragments written, the file still open
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    open_files = [p for p in (vault_dir / "staging").iterdir() if p.stat().st_size > 0]
    assert open_files, "the open segment should be left in staging"
    partial = max(open_files, key=lambda p: p.stat().st_size)
    probe = ffprobe(partial)
    assert probe["codec"] == "h264" and probe["frames"] >= 3  # readable up to its last complete fragment

    # restart: the leftover becomes an orphan named (with its hash) in the restart record; recording resumes
    vault = Vault(vault_dir)
    clock = SystemClock()
    sensors = Sensors(clock)
    sealer = Sealer(vault, identity, device_id="test-device", site_id="test-site")
    restart = sealer.start(sensors.moment(), reason="start after crash")
    assert partial.name in {o["name"] for o in restart.record["extra"]["orphans"]}
    assert (vault_dir / "orphans" / partial.name).exists()
    svc = VideoService(VideoConfig(**CFG), sealer=sealer, vault=vault, identity=identity, sensors=sensors,
                       device_id="test-device", site_id="test-site")
    svc.start()
    mclock = ManualClock(wall=clock.wall_ns(), mono=clock.mono_ns())
    for f in make_frames(mclock, 20):
        svc.push(f)
    svc.close()
    assert svc.media.stats.segments == 2

    report = check(vault_dir, checkers=[segment_checker()])
    segs = report.sections["segments"]
    assert len(segs) >= 4 and len({s["stream"] for s in segs}) == 2  # two runs, a restart record between
    assert all(KNOWN_CORE_FINDING in p["problem"] for p in report.problems), report.problems
    assert any("orphans" in w["warning"] for w in report.warnings)
    for rec in (vault_dir / "items").rglob("*.segment.mp4"):
        assert ffprobe(rec)["codec"] == "h264"
        check_c2pa(rec)
    vault.close()
    if partial.exists():
        pytest.fail("staging leftover was not moved to orphans")

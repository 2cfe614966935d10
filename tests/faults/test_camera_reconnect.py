"""A camera that disappears and returns: the hub reopens it with exponential backoff (never a busy loop), the
agent seals camera_lost / camera_restored events, and no still is made from a frozen frame meanwhile."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.capture.base import CaptureSettings
from agent.capture.synthetic import SyntheticBackend
from agent.core.clock import SystemClock
from agent.core.errors import CaptureError
from agent.core.model import Frame
from agent.device.config import load_config
from agent.device.pipeline import FrameHub
from agent.device.runtime import Agent
from tests.faults.rig import Rig, wait_until


class Cable:
    """The USB cable (or the RTSP server) the test plugs and unplugs."""

    def __init__(self) -> None:
        self.connected = True
        self.opens = 0


class FlakyCamera(SyntheticBackend):
    """A real synthetic camera that fails to read and to open while its cable is out."""

    def __init__(self, cable: Cable, settings: CaptureSettings) -> None:
        super().__init__(settings, SystemClock())
        self.cable = cable

    def _open(self) -> None:
        self.cable.opens += 1
        if not self.cable.connected:
            raise CaptureError("flaky: /dev/video0 not found")
        super()._open()

    def _read(self) -> Frame:
        if not self.cable.connected:
            raise CaptureError("flaky: device disconnected")
        return super()._read()


SETTINGS = CaptureSettings(width=64, height=48, fps=20)


def test_hub_reopens_with_backoff_and_reports(tmp_path: Path) -> None:
    cable = Cable()
    events: list[tuple[str, dict[str, Any]]] = []
    hub = FrameHub(FlakyCamera(cable, SETTINGS), reopen=lambda: FlakyCamera(cable, SETTINGS),
                   on_event=lambda k, d: events.append((k, d)), backoff_initial_s=0.1, backoff_max_s=1.0)
    hub.start()
    try:
        assert wait_until(lambda: hub.frames_read > 5, 10)
        cable.connected = False
        assert wait_until(lambda: [k for k, _ in events] == ["camera_lost"], 5)
        assert hub.latest is None  # no frozen frame for stills
        opens_at_loss = cable.opens
        time.sleep(3.0)  # backoff 0.1, 0.2, 0.4, 0.8, 1.0: a handful of attempts, not thousands
        attempts = cable.opens - opens_at_loss
        assert 3 <= attempts <= 8, attempts
        frames_before = hub.frames_read
        cable.connected = True
        assert wait_until(lambda: [k for k, _ in events] == ["camera_lost", "camera_restored"], 5)
        assert wait_until(lambda: hub.frames_read > frames_before + 5, 5)
        assert hub.error is None and hub.reconnects == 1 and not hub.ended.is_set()
        assert events[1][1]["attempts"] >= attempts
    finally:
        hub.close()
    assert hub.ended.is_set()
    print("camera reconnect:", {"attempts_in_3s": attempts, "restored": events[1][1]})


def test_close_during_backoff_returns_promptly() -> None:
    cable = Cable()
    hub = FrameHub(FlakyCamera(cable, SETTINGS), reopen=lambda: FlakyCamera(cable, SETTINGS),
                   backoff_initial_s=5.0, backoff_max_s=30.0)
    hub.start()
    assert wait_until(lambda: hub.frames_read > 2, 10)
    cable.connected = False
    time.sleep(0.3)
    t = time.monotonic()
    hub.close()
    assert time.monotonic() - t < 2.0 and hub.ended.is_set()
    assert not [th for th in threading.enumerate() if th.name == "frame-hub"]


def test_agent_seals_camera_lost_and_restored(tmp_path: Path) -> None:
    cable = Cable()
    rig = Rig(tmp_path / "device", still_interval_s=0.1)
    settings = CaptureSettings(width=160, height=120, fps=10)
    agent = Agent(load_config(rig.config), camera=FlakyCamera(cable, settings),
                  camera_factory=lambda: FlakyCamera(cable, settings))
    agent.hub.backoff_initial_s = 0.2
    try:
        agent.start()
        assert wait_until(lambda: sum(r["kind"] == "still" for r in rig.sealed()) >= 3, 20)
        cable.connected = False
        lost_ns = time.time_ns()
        time.sleep(2.0)
        cable.connected = True
        back_ns = time.time_ns()
        assert wait_until(lambda: any(r["extra"].get("type") == "camera_restored" for r in rig.sealed()), 10)
        assert wait_until(lambda: rig.sealed()[-1]["kind"] == "still", 10)
        status = agent.health()["camera"]
    finally:
        agent.close()
    records = rig.sealed()
    kinds = [r["extra"].get("type") for r in records if r["kind"] == "event"]
    assert "camera_lost" in kinds and "camera_restored" in kinds
    assert status["error"] is None
    stills = [r for r in records if r["kind"] == "still"]
    # No still shows a frame from the outage (none captured in it) and no frame was sealed twice.
    slack = 300_000_000  # a still already in the sealing queue at the moment of loss
    assert not [s for s in stills if lost_ns + slack < s["captured"]["wall_us"] * 1000 < back_ns], "frozen still"
    frames = Counter(s["captured"]["wall_us"] for s in stills)  # frame indices restart with a new camera
    assert max(frames.values()) == 1, "the same frame was sealed twice"
    rep = rig.verify_json(rig.vault, anchors=False)
    others = [p for p in rep["problems"] if "with no restart/gap record" not in p["problem"]]
    assert not others, others
    if rep["problems"]:
        pytest.xfail("FINDING (agent/video/verify_segments.py): the segment checker reports the camera outage as "
                     "an unexplained time gap between segments although camera_lost/camera_restored events are "
                     "sealed between them; it should accept those events (and vault_full) like a restart record")

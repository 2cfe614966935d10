"""Backend factory, settings validation and the [capture] config model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.capture import BACKENDS, CaptureSettings, backend_class, open_backend
from agent.capture.base import Pacer
from agent.capture.settings import CaptureConfig
from agent.core.clock import ManualClock
from agent.core.errors import CaptureError

REPO = Path(__file__).resolve().parents[2]


def test_unknown_backend_is_named() -> None:
    with pytest.raises(CaptureError, match=r"unknown capture backend 'webcam'.*synthetic"):
        open_backend("webcam", CaptureSettings(), ManualClock())


def test_backend_modules_are_imported_lazily() -> None:
    code = "import sys, agent.capture; print('cv2' in sys.modules, 'agent.capture.opencv' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    for name in BACKENDS:
        assert backend_class(name).name == name


@pytest.mark.parametrize("kw", [{"width": 0}, {"height": -1}, {"fps": 0}])
def test_settings_reject_nonsense(kw: dict[str, int]) -> None:
    with pytest.raises(CaptureError):
        CaptureSettings(**kw)  # type: ignore[arg-type]


def test_config_defaults_and_conversion() -> None:
    cfg = CaptureConfig()
    assert cfg.backend == "synthetic"
    s = CaptureConfig(backend="opencv", source="/dev/video0", width=640, height=480, loop=True).to_settings()
    assert (s.width, s.height, s.source, s.loop) == (640, 480, "/dev/video0", True)


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="resolution"):
        CaptureConfig.model_validate({"resolution": "720p"})
    with pytest.raises(ValidationError, match="backend"):
        CaptureConfig.model_validate({"backend": "webcam"})
    with pytest.raises(ValidationError, match="jpeg_quality"):
        CaptureConfig.model_validate({"jpeg_quality": 101})


def test_every_config_field_is_described() -> None:
    assert all(f.description for f in CaptureConfig.model_fields.values())


def test_pacer_keeps_rate_and_never_bursts() -> None:
    p = Pacer(10)  # 100 ms slots
    assert p.delay_s(0) == 0.0  # first frame at once
    assert p.delay_s(0) == pytest.approx(0.1)  # next slot
    assert p.delay_s(150_000_000) == pytest.approx(0.05)  # slot at 200 ms
    # the reader stalls for a second: one frame at once, then the rate again, no burst of ten
    assert p.delay_s(1_500_000_000) == 0.0
    assert p.delay_s(1_500_000_000) == pytest.approx(0.1)


def test_backends_are_chosen_by_capability_not_name() -> None:
    """The runtime records natively where a backend lists "h264"; self-test labels "simulated" cameras."""
    caps = {name: backend_class(name).capabilities for name in BACKENDS}
    assert "h264" in caps["picamera2"] and "still" in caps["picamera2"]
    assert [n for n, c in caps.items() if "h264" in c] == ["picamera2"]
    assert [n for n, c in caps.items() if "simulated" in c] == ["synthetic"]

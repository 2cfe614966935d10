"""Attacks on ``view.zoom``: forged, unsigned, unpermitted, replayed and malformed zooms change nothing.

The real verifier, trust store, replay cache, controller and zoom part; a camera that records what it was asked.
Every refusal must leave the view as it was and seal nothing; the officer hears the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.capture.base import CaptureBackend, CaptureSettings
from agent.core.clock import ManualClock
from agent.core.model import Frame
from agent.core.view import ViewRegion
from agent.customs.keys import OfficerKey, init_officer
from agent.device.sealer import Sealer
from agent.device.zoom_part import ViewZoom
from agent.signing.keys import DeviceIdentity
from agent.uplink.command_controller import CommandController
from agent.wire.commands import CommandVerifier, ReplayCache, TrustStore, sign_command
from tests.support.helpers import moment

DEVICE = "dev-zoom"


class Camera(CaptureBackend):
    """A camera that zooms itself (like picamera2) and remembers every crop it was asked for."""

    name = "zoom-test"

    def __init__(self) -> None:
        super().__init__(CaptureSettings(width=64, height=36), ManualClock())
        self.asked: list[tuple[int, int, int, int]] = []

    def zoom_area(self) -> tuple[int, int, int, int]:
        return 0, 0, 4608, 2592

    def set_view(self, region: ViewRegion) -> tuple[int, int, int, int]:
        self.asked.append(region.pixels(4608, 2592))
        return self.asked[-1]


class Rig:
    def __init__(self, controller: CommandController, zoom: ViewZoom, camera: Camera, sealer: Sealer,
                 keys: dict[str, OfficerKey], clock: ManualClock) -> None:
        self.controller, self.zoom, self.camera, self.sealer, self.keys, self.clock = (
            controller, zoom, camera, sealer, keys, clock)
        self.live: list[str] = ["session-1"]

    def payload(self, args: Any, *, officer: str = "officer-alice", key: ec.EllipticCurvePrivateKey | None = None,
                nonce: str | None = None) -> bytes:
        wire = sign_command(key or self.keys[officer].private_key, officer=officer, device=DEVICE,
                            command="view.zoom", args=args, now_ms=self.clock.wall_ns() // 1_000_000, nonce=nonce)
        return json.dumps(wire).encode()

    def send(self, payload: bytes) -> dict[str, Any]:
        return self.controller.handle(payload)

    def untouched(self) -> bool:
        return self.zoom.region.full and not self.camera.asked and self.zoom.changes == 0


@pytest.fixture
def rig(tmp_path: Path, identity: DeviceIdentity, manual_clock: ManualClock, sealer: Sealer) -> Iterator[Rig]:
    keys = {n: init_officer(tmp_path / n, n) for n in ("officer-alice", "officer-bob", "officer-mallory")}
    trust = tmp_path / "trust"
    trust.mkdir()
    for n in ("officer-alice", "officer-bob"):  # mallory's key is not trusted by the device
        (trust / f"{n}.pem").write_bytes(keys[n].cert.public_bytes(serialization.Encoding.PEM))
    # bob may watch (live.start brings its keepalive/stop) but not zoom
    (trust / "permissions.json").write_text(json.dumps({"officer-alice": ["*"], "officer-bob": ["live.start"]}))
    replay = ReplayCache(tmp_path / "replay.sqlite")
    camera = Camera()
    holder: list[Rig] = []
    zoom = ViewZoom(lambda: camera, lambda extra: sealer.seal("event", moment(manual_clock), extra=extra),
                    lambda: holder[0].live, lambda: (64, 36))
    controller = CommandController(DEVICE, CommandVerifier(DEVICE, TrustStore(trust), replay, manual_clock),
                                   identity, manual_clock, lambda *_: None, {"view.zoom": zoom.handle})
    holder.append(Rig(controller, zoom, camera, sealer, keys, manual_clock))
    yield holder[0]
    replay.close()


def _refused(body: dict[str, Any], code: str) -> str:
    assert body["ok"] is False, body
    assert body["error"]["code"] == code, body["error"]
    return str(body["error"]["message"])


def test_a_valid_zoom_is_applied_and_sealed_with_the_officer(rig: Rig) -> None:
    body = rig.send(rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.0}))
    assert body["ok"], body
    assert rig.camera.asked == [(1152, 648, 2304, 1296)]
    result = body["result"]
    assert result["view"]["factor"] == 2.0 and result["pixels"]["space"] == "sensor"
    assert isinstance(result["seq"], int) and len(result["record_hash"]) == 64


def test_unsigned_zoom_is_refused(rig: Rig) -> None:
    wire = json.loads(rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.0}))
    del wire["sig"]
    _refused(rig.send(json.dumps(wire).encode()), "unsigned")
    assert rig.untouched()


def test_zoom_signed_by_an_untrusted_key_is_refused(rig: Rig) -> None:
    _refused(rig.send(rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.0}, officer="officer-mallory")), "untrusted")
    assert rig.untouched()


def test_zoom_args_changed_after_signing_are_refused(rig: Rig) -> None:
    wire = json.loads(rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.0}))
    wire["body"]["args"]["factor"] = 8.0  # a man in the middle zooms further
    _refused(rig.send(json.dumps(wire).encode()), "bad_signature")
    assert rig.untouched()


def test_zoom_in_alices_name_with_bobs_key_is_refused(rig: Rig) -> None:
    payload = rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.0}, key=rig.keys["officer-mallory"].private_key)
    _refused(rig.send(payload), "untrusted")  # the key id decides, not the name in the body
    assert rig.untouched()


def test_an_officer_without_the_permission_cannot_zoom(rig: Rig) -> None:
    message = _refused(rig.send(rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.0}, officer="officer-bob")),
                       "unauthorized")
    assert "view.zoom" in message and "permissions.json" in message
    assert rig.untouched()


def test_a_replayed_zoom_is_refused(rig: Rig) -> None:
    payload = rig.payload({"cx": 0.25, "cy": 0.25, "factor": 2.0})
    assert rig.send(payload)["ok"]
    assert rig.send(rig.payload({"reset": True}))["ok"]
    _refused(rig.send(payload), "replay")  # the same signed zoom, sent again after the reset
    assert rig.zoom.region.full and rig.zoom.changes == 2


@pytest.mark.parametrize("args", [
    {"cx": 0.5, "cy": 0.5, "factor": 0.5},  # zoom out beyond the full view
    {"cx": 0.5, "cy": 0.5, "factor": 8.0001},  # beyond the maximum zoom: a region smaller than 1/8
    {"cx": 0.5, "cy": 0.5, "factor": 1e300},  # huge
    {"cx": 0.5, "cy": 0.5, "factor": -2.0},
    {"cx": 0.5, "cy": 0.5, "factor": 0},
    {"cx": 1.5, "cy": 0.5, "factor": 2.0},  # outside the frame
    {"cx": -0.1, "cy": 0.5, "factor": 2.0},
    {"cx": 0.1, "cy": 0.5, "factor": 2.0},  # the region would leave the frame on the left
    {"cx": 0.5, "cy": 0.99, "factor": 4.0},  # ... at the bottom
    {"cx": "0.5", "cy": 0.5, "factor": 2.0},  # a string for a number
    {"cx": 0.5, "cy": 0.5, "factor": True},  # a boolean for a number
    {"cx": 0.5, "cy": 0.5, "factor": [2.0]},
    {"cx": 0.5, "cy": 0.5},  # incomplete
    {"factor": 2.0},
    {},
    {"cx": 0.5, "cy": 0.5, "factor": 2.0, "x": 0},  # an extra field
    {"cx": 0.5, "cy": 0.5, "factor": 2.0, "reset": True},  # both forms at once
    {"reset": False},
    {"reset": "yes"},
    {"cx": 0.5, "cy": 0.5, "factor": 2.0, "session": "s" * 5000},
])
def test_out_of_range_or_malformed_zooms_are_refused(rig: Rig, args: dict[str, Any]) -> None:
    message = _refused(rig.send(rig.payload(args)), "bad_args")
    assert message and len(message) <= 300
    assert rig.untouched()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinite_factors_are_refused(rig: Rig, number: str) -> None:
    """Signed over the canonical body, then the number swapped in the JSON text: the parser or the model refuses."""
    signed = rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.5})
    payload = signed.replace(b'"factor": 2.5', b'"factor": ' + number.encode())
    assert number.encode() in payload
    body = rig.send(payload)
    assert body["ok"] is False and body["error"]["code"] in ("malformed", "bad_signature", "bad_args"), body
    assert rig.untouched()


def test_nan_in_the_model_is_refused() -> None:
    from pydantic import ValidationError

    from agent.wire.zoom import ZoomArgs

    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            ZoomArgs.model_validate({"cx": 0.5, "cy": bad, "factor": 2.0})


def test_zoom_without_a_live_view_is_refused_but_reset_is_accepted(rig: Rig) -> None:
    rig.live = []
    message = _refused(rig.send(rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.0})), "conflict")
    assert "live view" in message
    assert rig.untouched()
    body = rig.send(rig.payload({"reset": True}))
    assert body["ok"] and body["result"]["changed"] is False  # already full: nothing sealed
    assert rig.untouched()


def test_zoom_is_reset_when_the_live_view_ends(rig: Rig) -> None:
    assert rig.send(rig.payload({"cx": 0.6, "cy": 0.4, "factor": 3.0}))["ok"]
    assert rig.zoom.region.factor == pytest.approx(3.0)
    rig.zoom.on_live(False)
    assert rig.zoom.region.full and rig.camera.asked[-1] == (0, 0, 4608, 2592)


def test_crop_path_tags_frames_and_native_path_reads_the_reported_crop() -> None:
    """A camera without its own zoom: the hub crops; one with it: the frame's reported ScalerCrop decides."""
    from agent.core.model import SensorMeta

    frame = Frame(image=np.zeros((54, 64), np.uint8), index=0, wall_ns=0, mono_ns=0, fmt="yuv420p")
    plain = CaptureBackend(CaptureSettings(width=64, height=36), ManualClock())
    zoom = ViewZoom(lambda: plain, lambda extra: None, lambda: ["s"], lambda: (64, 36))  # type: ignore[arg-type,return-value]
    zoom.region = ViewRegion.centred(0.5, 0.5, 2.0)
    out = zoom.transform(frame)
    assert out.view is not None and out.view.factor == pytest.approx(2.0) and out.image.shape == frame.image.shape
    native = Camera()
    zoom = ViewZoom(lambda: native, lambda extra: None, lambda: ["s"], lambda: (64, 36))  # type: ignore[arg-type,return-value]
    zoom.region = ViewRegion.centred(0.5, 0.5, 4.0)  # asked, but the camera has not applied it yet
    reported = Frame(image=frame.image, index=1, wall_ns=0, mono_ns=0, fmt="yuv420p",
                     sensor=SensorMeta(scaler_crop=(0, 0, 4608, 2592)))
    assert zoom.transform(reported).view is None  # the full view is what this frame shows
    applied = Frame(image=frame.image, index=2, wall_ns=0, mono_ns=0, fmt="yuv420p",
                    sensor=SensorMeta(scaler_crop=(1728, 972, 1152, 648)))
    view = zoom.transform(applied).view
    assert view is not None and view.factor == pytest.approx(4.0)


def test_a_zoom_that_cannot_be_sealed_is_undone(rig: Rig) -> None:
    """Never a zoom without its record: when sealing fails the camera goes back and the officer hears it."""
    from agent.core.errors import VaultError

    def broken(extra: dict[str, Any]) -> Any:
        raise VaultError("vault unwritable")

    rig.zoom._seal = broken
    body = rig.send(rig.payload({"cx": 0.5, "cy": 0.5, "factor": 2.0}))
    assert body["ok"] is False and body["error"]["code"] == "failed"
    assert rig.zoom.region.full and rig.camera.asked == [(1152, 648, 2304, 1296), (0, 0, 4608, 2592)]

"""Full-resolution document stills in the running agent: the full sensor while the video keeps recording.

picamera2 is the fake (tests/support/picamera2_fake.py) with an IMX708's 4608x2592 sensor: with
``document_stills`` main is the full sensor, H.264 encodes lores, and a still from main is the sensor size.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from agent.device.full_stills import StillBusy
from agent.device.verify_command import default_checkers
from agent.evidence.vault import Vault
from agent.signing.records import parse_sidecar
from agent.signing.verify import verify
from tests.integration.test_runtime import make_agent
from tests.support.helpers import wait_for


def _frame_runs(path: Path) -> list[tuple[int, int]]:
    """(first_frame_index, frames) of each sealed segment of the vault at ``path``, in segment order."""
    runs = []
    vault = Vault(path)
    for row in vault.rows():
        if row.kind == "segment":
            extra = parse_sidecar((path / row.record_path).read_bytes(), row.record_path).record["extra"]
            runs.append((extra["stream"]["segment_no"], extra["first_frame_index"], extra["frames"]))
    vault.close()
    return [(first, n) for _no, first, n in sorted(runs)]


def test_picamera2_full_resolution_still_is_the_sensor_size_while_segments_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import picamera2_fake as fake

    fake.install(monkeypatch)
    agent = make_agent(tmp_path, capture={"backend": "picamera2", "width": 320, "height": 240, "fps": 10,
                                          "still_interval_s": 60, "picamera2": {"document_stills": True}},
                       video={"segment_seconds": 1.0, "fragment_seconds": 0.5})
    try:
        agent.start()
        wait_for(lambda: sum(r.kind == "segment" for r in agent.vault.rows()) >= 1, 60)
        cam = fake.Picamera2.instances[-1]
        config = cam.camera_config
        assert config["main"]["size"] == (4608, 2592) and config["lores"]["size"] == (320, 240)
        assert config["encode"] == "lores"
        item = agent.take_full_still("officer", {"label": "identity_document"})
        assert item is not None
        extra = item.record["extra"]
        assert (extra["width"], extra["height"]) == (4608, 2592) == cam.sensor_resolution
        assert extra["resolution"] == "full" and extra["sensor"] == {"width": 4608, "height": 2592}
        assert extra["region"] is None and extra["label"] == "identity_document"
        from PIL import Image

        with Image.open(next(agent.vault.path.rglob(item.record["media"]["name"]))) as img:
            assert img.size == (4608, 2592)
        stream = agent.take_still("schedule")  # a stream still in document mode: lores, the video's size
        assert stream is not None and (stream.record["extra"]["width"], stream.record["extra"]["height"]) == (320, 240)
        seen = sum(r.kind == "segment" for r in agent.vault.rows())
        wait_for(lambda: sum(r.kind == "segment" for r in agent.vault.rows()) >= seen + 2, 60)
    finally:
        agent.close()
    runs = _frame_runs(tmp_path / "vault")
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(runs))  # every frame index, no gap
    report = verify(tmp_path / "vault", checkers=default_checkers())
    segs = sorted(report.sections["segments"], key=lambda s: s["segment_no"])
    assert len(segs) >= 3 and all(s["frames"] >= 1 for s in segs)
    assert [s["segment_no"] for s in segs] == list(range(len(segs)))  # no segment missing, no time gap (verify)
    stills = {s["seq"]: s for s in report.sections["stills"]}
    assert stills[item.seq] == {"seq": item.seq, "width": 4608, "height": 2592, "resolution": "full"}


def test_picamera2_without_document_stills_refuses_full_resolution_with_a_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import picamera2_fake as fake

    fake.install(monkeypatch)
    agent = make_agent(tmp_path, capture={"backend": "picamera2", "width": 320, "height": 240, "fps": 10,
                                          "still_interval_s": 60},
                       video={"segment_seconds": 1.0, "fragment_seconds": 0.5})
    try:
        agent.start()
        wait_for(lambda: agent.hub.latest is not None, 60)
        with pytest.raises(Exception, match="document_stills = true"):
            agent.take_full_still("officer")
    finally:
        agent.close()


def test_synthetic_full_still_is_the_sensor_size_and_one_at_a_time(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, capture={"width": 320, "height": 180, "fps": 10, "still_interval_s": 60,
                                          "sensor_width": 1920, "sensor_height": 1080})
    release, entered = threading.Event(), threading.Event()
    camera = agent.hub.camera
    original = camera.full_frame

    def slow(latest):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(60)
        return original(latest)

    camera.full_frame = slow  # type: ignore[method-assign]
    results: list[object] = []
    try:
        agent.start()
        wait_for(lambda: agent.hub.latest is not None, 60)
        first = threading.Thread(target=lambda: results.append(agent.take_full_still("officer")))
        first.start()
        assert entered.wait(60)
        with pytest.raises(StillBusy, match="already being taken"):
            agent.full_stills.take("officer")
        release.set()
        first.join(60)
    finally:
        release.set()
        agent.close()
    item = results[0]
    assert (item.record["extra"]["width"], item.record["extra"]["height"]) == (1920, 1080)  # type: ignore[attr-defined]
    assert agent.full_stills.stats.refused_busy == 1 and agent.full_stills.stats.taken == 1
    verify(tmp_path / "vault", checkers=default_checkers())


def test_full_still_without_video_is_sealed_on_the_command_thread(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, capture={"width": 320, "height": 180, "fps": 10, "still_interval_s": 60,
                                          "sensor_width": 1280, "sensor_height": 720}, video={"enabled": False})
    try:
        agent.start()
        wait_for(lambda: agent.hub.latest is not None, 60)
        item = agent.take_full_still("officer", {"note": "permit on the wall"})
        stream = agent.take_still("officer")
    finally:
        agent.close()
    assert item is not None and stream is not None
    extra = item.record["extra"]
    assert (extra["width"], extra["height"], extra["resolution"], extra["note"]) == (1280, 720, "full",
                                                                                    "permit on the wall")
    assert (stream.record["extra"]["width"], stream.record["extra"]["height"]) == (320, 180)
    report = verify(tmp_path / "vault", checkers=default_checkers())
    assert {"seq": item.seq, "width": 1280, "height": 720, "resolution": "full"} in report.sections["stills"]


def test_a_zoomed_full_still_is_cut_from_the_source_pixels_not_scaled(tmp_path: Path) -> None:
    """While the officer is zoomed in, a document still shows the zoomed region at the sensor's own pixels (the
    stream only shows it scaled up to its 320x180), and its record says which part of the full view it is."""
    from agent.core.view import ViewRegion

    agent = make_agent(tmp_path, capture={"width": 320, "height": 180, "fps": 10, "still_interval_s": 60,
                                          "sensor_width": 1920, "sensor_height": 1080}, video={"enabled": False})
    region = ViewRegion(0.5, 0.25, 0.25, 0.25)  # a 4x zoom on the right half, upper middle
    agent.full_stills.zoom = lambda: region  # what the runtime wires to the zoom part's region
    try:
        agent.start()
        wait_for(lambda: agent.hub.latest_captured is not None, 60)
        item = agent.take_full_still("officer", {"label": "identity_document"})
    finally:
        agent.close()
    assert item is not None
    extra = item.record["extra"]
    assert (extra["width"], extra["height"]) == (480, 268)  # 1920/4 x 1080/4, sides kept multiples of 4
    assert extra["region"] == {"space": "frame", "rect": [960, 270, 480, 268], "full_width": 1920,
                               "full_height": 1080, "view": region.as_record()}
    from PIL import Image

    with Image.open(next(agent.vault.path.rglob(item.record["media"]["name"]))) as img:
        assert img.size == (480, 268)
    report = verify(tmp_path / "vault", checkers=default_checkers())
    assert {"seq": item.seq, "width": 480, "height": 268, "resolution": "full"} in report.sections["stills"]


def test_a_zoomed_picamera2_full_still_names_the_sensor_crop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.core.view import ViewRegion
    from tests.support import picamera2_fake as fake

    fake.install(monkeypatch)
    agent = make_agent(tmp_path, capture={"backend": "picamera2", "width": 320, "height": 240, "fps": 10,
                                          "still_interval_s": 60, "picamera2": {"document_stills": True}},
                       video={"segment_seconds": 1.0, "fragment_seconds": 0.5})
    region = ViewRegion(0.25, 0.25, 0.5, 0.5)
    try:
        agent.start()
        wait_for(lambda: agent.hub.latest is not None, 60)
        asked = agent.hub.camera.set_view(region)  # ScalerCrop, as the zoom part sets it
        wait_for(lambda: (f := agent.hub.latest) is not None and f.sensor is not None
                 and f.sensor.scaler_crop is not None and tuple(f.sensor.scaler_crop) == tuple(asked), 60)
        agent.full_stills.zoom = lambda: region
        item = agent.take_full_still("officer")
    finally:
        agent.close()
    assert item is not None
    extra = item.record["extra"]
    assert (extra["width"], extra["height"]) == (4608, 2592)  # the ISP scales the crop to the main stream
    assert extra["region"] == {"space": "sensor", "rect": list(asked), "view": region.as_record()}
    verify(tmp_path / "vault", checkers=default_checkers())

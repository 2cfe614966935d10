"""Analytics on synthetic frames: each condition's onset and end, hold times, and the geofence maths."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from agent.core.model import Frame, GpsFix, GpsReading, SensorMeta
from agent.video.analytics import Analyzer, VideoEvent, distance_m, inside_geofence
from agent.video.settings import AnalyticsConfig, GeofenceConfig, VideoConfig

FPS = 10
rng = np.random.default_rng(7)
SCENE = cv2.GaussianBlur(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8), (0, 0), 3)
SCENE = cv2.normalize(SCENE, None, 20, 235, cv2.NORM_MINMAX)


def noisy(img: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Sensor noise, so a live feed never repeats exactly."""
    return np.clip(img.astype(np.int16) + rng.integers(-4, 5, img.shape), 0, 255).astype(np.uint8)


def run(images: list[npt.NDArray[np.uint8]], cfg: AnalyticsConfig | None = None,
        gps: list[GpsReading | None] | None = None) -> list[VideoEvent]:
    a = Analyzer(cfg or AnalyticsConfig())
    events: list[VideoEvent] = []
    for i, img in enumerate(images):
        t = int(i * 1e9 / FPS)
        events += a.feed(Frame(img, i, 1_790_000_000_000_000_000 + t, 10**9 + t), gps[i] if gps else None)
    return events


def kinds(events: list[VideoEvent]) -> list[tuple[str, str, float]]:
    return [(e.type, e.phase, round((e.mono_ns - 10**9) / 1e9, 1)) for e in events]


def test_live_static_scene_raises_nothing() -> None:
    assert run([noisy(SCENE) for _ in range(100)]) == []


def test_covered_lens_is_uniform_and_dark_with_onset_and_end() -> None:
    covered = np.full_like(SCENE, 15)
    imgs = [noisy(SCENE) for _ in range(20)] + [noisy(covered) for _ in range(30)] + \
        [noisy(SCENE) for _ in range(40)]
    ev = kinds(run(imgs))
    types = {(t, p) for t, p, _ in ev}
    assert {("uniform", "onset"), ("uniform", "end"), ("too_dark", "onset"), ("too_dark", "end")} <= types
    onset = next(t for k, p, t in ev if k == "uniform" and p == "onset")
    end = next(t for k, p, t in ev if k == "uniform" and p == "end")
    assert 2.9 <= onset <= 3.3 and 6.9 <= end <= 7.4  # 1 s to start, 2 s clear to end
    assert not any(k == "scene_change" for k, _, _ in ev)  # uncovering the same view is not "moved"


def test_a_brief_dip_is_not_an_alarm() -> None:
    imgs = [noisy(SCENE) for _ in range(20)] + [np.zeros_like(SCENE)] * 3 + [noisy(SCENE) for _ in range(20)]
    assert run(imgs) == []


def test_frozen_feed_starts_after_frozen_seconds_and_ends_on_change() -> None:
    frozen = noisy(SCENE)
    imgs = [noisy(SCENE) for _ in range(10)] + [frozen] * 60 + [noisy(SCENE) for _ in range(10)]
    ev = kinds(run(imgs))
    assert [(k, p) for k, p, _ in ev] == [("frozen", "onset"), ("frozen", "end")]
    assert 4.7 <= ev[0][2] <= 5.3 and ev[1][2] == pytest.approx(7.0, abs=0.3)


def test_camera_moved_and_turned_raise_scene_change() -> None:
    h, w = SCENE.shape[:2]
    moved = cv2.warpAffine(SCENE, np.float32([[1, 0, 12], [0, 1, 5]]), (w, h), borderMode=cv2.BORDER_REFLECT)
    turned = cv2.flip(SCENE, -1)
    for other in (moved, turned):
        ev = kinds(run([noisy(SCENE) for _ in range(20)] + [noisy(other) for _ in range(60)]))
        assert [(k, p) for k, p, _ in ev] == [("scene_change", "onset"), ("scene_change", "end")]
        assert 3.9 <= ev[0][2] <= 4.5


def test_something_crossing_the_view_is_not_a_move() -> None:
    imgs = []
    for i in range(80):
        img = noisy(SCENE)
        x = (i * 8) % 320
        cv2.rectangle(img, (x, 20), (x + 120, 170), (200, 30, 30), -1)  # a big object sweeping across
        imgs.append(img)
    assert run(imgs) == []


def fix(lat: float, lon: float) -> GpsReading:
    return GpsReading(GpsFix(lat=lat, lon=lon, mode=3, fix_time="2026-11-22T09:00:00Z"))


def test_geofence_circle_and_polygon() -> None:
    circle = GeofenceConfig(centre=(31.2304, 121.4737), radius_m=100)
    assert inside_geofence(circle, 31.2304, 121.4737)[0]
    assert not inside_geofence(circle, 31.2324, 121.4737)[0]  # ~222 m north
    assert distance_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-3)
    square = GeofenceConfig(polygon=[(31.0, 121.0), (31.0, 121.1), (31.1, 121.1), (31.1, 121.0)])
    assert inside_geofence(square, 31.05, 121.05)[0] and not inside_geofence(square, 31.15, 121.05)[0]
    gps: list[GpsReading | None] = [fix(31.2304, 121.4737)] * 20 + [GpsReading(None, "no fix")] * 10 + \
        [fix(31.2330, 121.4737)] * 20 + [fix(31.2304, 121.4737)] * 30
    ev = run([noisy(SCENE) for _ in range(80)], AnalyticsConfig(geofence=circle), gps)
    assert [(e.type, e.phase) for e in ev] == [("geofence", "onset"), ("geofence", "end")]
    assert ev[0].as_extra()["details"]["distance_m"] > 100  # "no fix" frames changed nothing


def test_settings_refuse_unknown_keys_and_bad_shapes() -> None:
    with pytest.raises(ValidationError):
        VideoConfig(segment_seconds=10, frobnicate=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="not both"):
        GeofenceConfig(polygon=[(0, 0), (0, 1), (1, 1)], centre=(0, 0), radius_m=5)
    with pytest.raises(ValidationError, match="go together"):
        GeofenceConfig(centre=(0, 0))
    with pytest.raises(ValidationError, match="WGS84"):
        GeofenceConfig(centre=(95, 0), radius_m=5)
    with pytest.raises(ValidationError, match="fragment_seconds"):
        VideoConfig(segment_seconds=2, fragment_seconds=5)
    assert VideoConfig.model_validate({"analytics": {"geofence": {"centre": [1, 2], "radius_m": 50}}})


def test_a_static_low_noise_live_scene_is_not_frozen() -> None:
    """Averaging 8x8 pixels would shrink this noise below one grey level and call the feed frozen."""
    big = cv2.resize(SCENE, (1280, 720))
    imgs = [np.clip(big + rng.normal(0, 0.7, big.shape), 0, 255).astype(np.uint8) for _ in range(50)]
    assert run(imgs, AnalyticsConfig(frozen_seconds=2)) == []


# -- anti-falsification v2: still scene vs frozen feed, covered is not frozen, replayed footage ---------------

def skipping_encoder(images: list[npt.NDArray[np.uint8]], every: int = 7) -> list[npt.NDArray[np.uint8]]:
    """What an H.264 camera stream of a still scene decodes to: now and then two frames are exact copies of
    the one before (all macroblocks skipped), the others carry the sensor's fresh noise."""
    out: list[npt.NDArray[np.uint8]] = []
    for i, img in enumerate(images):
        out.append(out[-1] if i % every >= every - 2 and out else img)
    return out


def test_a_still_scene_whose_stream_repeats_frames_now_and_then_is_not_frozen() -> None:
    imgs = skipping_encoder([noisy(SCENE) for _ in range(200)])
    assert [e for e in run(imgs) if e.type == "frozen"] == []


def test_a_covered_lens_is_uniform_and_dark_not_frozen() -> None:
    black = np.full_like(SCENE, 12)  # a cap on the lens: the same flat frame again and again
    ev = kinds(run([noisy(SCENE) for _ in range(20)] + [black] * 100 + [noisy(SCENE) for _ in range(40)]))
    types = {k for k, _, _ in ev}
    assert {"uniform", "too_dark"} <= types
    assert "frozen" not in types


def wander(n: int, seed: int = 11) -> list[npt.NDArray[np.uint8]]:
    """A live scene: a large object on a random walk (nothing periodic), sensor noise."""
    r = np.random.default_rng(seed)
    x, y, out = 100.0, 60.0, []
    for _ in range(n):
        x, y = float(np.clip(x + r.normal(0, 9), 0, 240)), float(np.clip(y + r.normal(0, 6), 0, 120))
        img = SCENE.copy()
        cv2.rectangle(img, (int(x), int(y)), (int(x) + 80, int(y) + 60), (40, 200, 240), -1)
        out.append(noisy(img))
    return out


def test_footage_replayed_in_a_loop_raises_replayed() -> None:
    live = wander(300)  # 30 s
    loop = live[50:250]  # 20 s of it played again, as recorded (bit for bit)
    ev = kinds(run(live + loop))
    onsets = [(k, t) for k, p, t in ev if p == "onset"]
    assert [k for k, _ in onsets] == ["replayed"], ev
    assert 30.0 < onsets[0][1] <= 42.0


def test_a_replay_that_went_through_an_encoder_again_is_still_replayed() -> None:
    live = wander(300)
    loop = [noisy(img) for img in live[50:250]]  # not bit-identical any more: fresh noise on every frame
    ev = [e for e in run(live + loop) if e.phase == "onset"]
    assert [e.type for e in ev] == ["replayed"]
    assert 0.5 <= ev[0].as_extra()["confidence"] <= 1.0


def test_live_motion_that_never_repeats_is_not_replayed_and_memory_is_bounded() -> None:
    cfg = AnalyticsConfig(replay_window_seconds=20)
    a = Analyzer(cfg)
    for i, img in enumerate(wander(600, seed=3)):
        t = int(i * 1e9 / FPS)
        assert a.feed(Frame(img, i, 1_790_000_000_000_000_000 + t, 10**9 + t)) == []
    assert a.replay.stored() <= 20 * cfg.analysis_fps + 2


def test_partial_obstruction_has_its_own_event_with_confidence() -> None:
    w = SCENE.shape[1]
    board = SCENE.copy()
    board[:, : int(w * 0.6)] = 35  # a board close to the lens hides 60 % of the view
    ev = run([noisy(SCENE) for _ in range(30)] + [noisy(board) for _ in range(50)] + [noisy(SCENE) for _ in range(40)])
    onsets = [e for e in ev if e.phase == "onset"]
    assert [e.type for e in onsets] == ["obstructed"], kinds(ev)
    assert onsets[0].as_extra()["confidence"] >= 0.5
    assert ("obstructed", "end") in {(e.type, e.phase) for e in ev}


def test_a_board_over_a_smooth_view_is_obstructed_not_a_moved_camera() -> None:
    """Asphalt has little texture to lose: the board is told by the part of the view that changed while the rest
    stayed put, and it ends when the old view is back (no second alarm when the board is taken away)."""
    h, w = SCENE.shape[:2]
    blobs = cv2.GaussianBlur(np.random.default_rng(3).normal(0, 1, (h, w)).astype(np.float32), (0, 0), 16)
    smooth = cv2.cvtColor(np.clip(115 + blobs / blobs.std() * 6, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    board = smooth.copy()
    board[:, : int(w * 0.55)] = 40
    ev = run([noisy(smooth) for _ in range(30)] + [noisy(board) for _ in range(80)]
             + [noisy(smooth) for _ in range(60)])
    assert [(e.type, e.phase) for e in ev] == [("obstructed", "onset"), ("obstructed", "end")], kinds(ev)
    details = ev[0].as_extra()["details"]
    assert details["cause"] == "partial_change" and details["fraction"] >= 0.4 and ev[0].confidence >= 0.5
    assert ev[1].mono_ns - 10**9 >= 11e9  # ended after the board went, not when the analyzer got used to it


def test_every_event_says_its_confidence() -> None:
    covered = np.full_like(SCENE, 15)
    ev = run([noisy(SCENE) for _ in range(20)] + [noisy(covered) for _ in range(30)] +
             [noisy(SCENE) for _ in range(40)])
    assert ev and all(0.0 < e.as_extra()["confidence"] <= 1.0 for e in ev)


def sensor_frames(images: list[npt.NDArray[np.uint8]], stall_from: int | None = None) -> list[Frame]:
    """Frames as picamera2 delivers them, with SensorTimestamp/SensorSequence/FrameDuration."""
    out = []
    for i, img in enumerate(images):
        k = i if stall_from is None or i < stall_from else stall_from
        t = int(i * 1e9 / FPS)
        out.append(Frame(img, i, 1_790_000_000_000_000_000 + t, 10**9 + t,
                         SensorMeta(sensor_ns=10**9 + int(k * 1e9 / FPS), sequence=k, frame_duration_us=100_000)))
    return out


def feed_all(frames: list[Frame]) -> list[VideoEvent]:
    a = Analyzer(AnalyticsConfig())
    return [e for f in frames for e in a.feed(f)]


def test_sensor_metadata_that_stops_advancing_is_a_frozen_feed_even_with_changing_pixels() -> None:
    # the pipeline hands out the same exposure again while something else varies the pixels
    ev = feed_all(sensor_frames([noisy(SCENE) for _ in range(100)], stall_from=30))
    onsets = [e for e in ev if e.phase == "onset"]
    assert [e.type for e in onsets] == ["frozen"]
    assert onsets[0].as_extra()["details"]["cause"] == "sensor_counters"
    assert onsets[0].as_extra()["confidence"] == 1.0
    assert (onsets[0].mono_ns - 10**9) / 1e9 <= 3.0 + 1.5  # decided by the counters, not frozen_seconds


def test_a_new_exposure_with_identical_pixels_is_frozen_and_a_noisy_still_one_is_not() -> None:
    still = feed_all(sensor_frames(skipping_encoder([noisy(SCENE) for _ in range(100)], every=50)))
    assert [e for e in still if e.type == "frozen"] == []
    frozen_img = noisy(SCENE)
    ev = feed_all(sensor_frames([noisy(SCENE) for _ in range(20)] + [frozen_img] * 60))
    assert [e.type for e in ev if e.phase == "onset"] == ["frozen"]


def test_hash_distance_is_the_same_without_numpy_2_bitwise_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.video.replay import hamming

    r = np.random.default_rng(0)
    rows = r.integers(0, 2**63, (20, 8), dtype=np.uint64)
    expected = hamming(rows, rows[3])
    monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy 1.x, as Debian bookworm ships it
    assert (hamming(rows, rows[3]) == expected).all() and expected[3] == 0

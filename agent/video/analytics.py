"""Anti-falsification checks on a low-resolution grey copy of the frames.

Covered lens, too dark, uniform picture, frozen feed, replayed footage, partial obstruction, camera
moved/turned, and position outside the registered site: exactly the tricks that send an inspection
back on site. Each condition has an onset and an end (with hold times, so one odd frame is not an
alarm) and each becomes a frozen :class:`VideoEvent`, which the sealer turns into an ``event`` record.
Every event carries a confidence: 0.5 when the evidence sat at its threshold, 1.0 when it was
unambiguous (the sensor's own counters, bit-identical frames); an end carries its onset's.
While the picture is blind (covered or dark) only ``too_dark``/``uniform`` are judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from agent.capture.pixels import full_range, luma
from agent.core.model import Frame, GpsReading
from agent.core.view import ViewRegion
from agent.core.vocab import AnalyticsEvent as EventType
from agent.video.imgops import accumulate_weighted, hanning, phase_correlate, resize_area
from agent.video.liveness import FrozenCheck
from agent.video.obstruction import ObstructionCheck
from agent.video.replay import ReplayCheck
from agent.video.settings import AnalyticsConfig, GeofenceConfig

Phase = Literal["onset", "end"]
EARTH_RADIUS_M = 6_371_008.8
UNIFORM_CONTRAST = 0.05  # standard deviation / mean below this (a cap: ~0.002, a dim night car park: 0.11)
CELL_CHANGED = 12.0  # grey levels a cell's mean moved by to count as changed (a board over asphalt: ~70)
CELL_CALM = 4.0  # ... and at most this to count as untouched (sensor noise, encoder flicker)
PARTIAL_MAX = 0.9  # a settled change over fewer cells than this, the rest untouched and not shifted: blocked
PARTIAL_CLEAN = 0.9  # share of cells that must be clearly changed or clearly untouched (a turned view is neither)


@dataclass(frozen=True)
class VideoEvent:
    """One onset or end of a condition, at the frame where it was decided."""

    type: EventType
    phase: Phase
    frame_index: int
    wall_ns: int
    mono_ns: int
    details: tuple[tuple[str, Any], ...] = ()
    confidence: float = 1.0  # 0.5 = evidence at the threshold, 1.0 = unambiguous

    def as_extra(self) -> dict[str, Any]:
        """The ``extra`` of the sealed ``event`` record."""
        return {"type": self.type, "phase": self.phase, "frame_index": self.frame_index,
                "confidence": round(self.confidence, 3), "details": dict(self.details)}


class _Hysteresis:
    """A condition that must hold ``onset_ns`` to start and be clear ``end_ns`` to end."""

    def __init__(self, onset_ns: int, end_ns: int) -> None:
        self.onset_ns, self.end_ns = onset_ns, end_ns
        self.active = False
        self._since: int | None = None  # when the raw condition last flipped against the state

    def restart(self) -> None:
        """Forget a pending flip (the evidence for it was gathered on another picture)."""
        self._since = None

    def update(self, raw: bool, mono_ns: int) -> Phase | None:
        if raw == self.active:
            self._since = None
            return None
        if self._since is None:
            self._since = mono_ns
        if mono_ns - self._since >= (self.end_ns if self.active else self.onset_ns):
            self.active, self._since = raw, None
            return "onset" if raw else "end"
        return None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def inside_geofence(fence: GeofenceConfig, lat: float, lon: float) -> tuple[bool, dict[str, Any]]:
    """Inside the polygon (ray casting; fine for site-sized areas) or within radius of the centre."""
    if fence.centre is not None and fence.radius_m is not None:
        d = distance_m(lat, lon, *fence.centre)
        return d <= fence.radius_m, {"distance_m": round(d, 1), "radius_m": fence.radius_m}
    poly = fence.polygon or []
    inside = False
    j = len(poly) - 1
    for i in range(len(poly)):
        (yi, xi), (yj, xj) = poly[i], poly[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside, {"polygon_vertices": len(poly)}


def _normalise(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    g = grey.astype(np.float32)
    return np.asarray((g - g.mean()) / max(float(g.std()), 1.0), dtype=np.float32)


class Analyzer:
    """Feed every frame; it analyses ``analysis_fps`` of them and returns the events decided."""

    def __init__(self, cfg: AnalyticsConfig) -> None:
        self.cfg = cfg
        s = 1e9
        self._step_ns = int(s / cfg.analysis_fps)
        self._next_ns: int | None = None
        self._dark = _Hysteresis(int(cfg.onset_seconds * s), int(cfg.end_seconds * s))
        self._uniform = _Hysteresis(int(cfg.onset_seconds * s), int(cfg.end_seconds * s))
        self._frozen = _Hysteresis(0, 0)  # the condition already carries its own duration
        # a replay matches in stretches (cuts, fast motion): it ends only after a stretch as long as it takes to start
        self._replayed = _Hysteresis(0, int((cfg.end_seconds + cfg.replay_min_seconds) * s))
        self._obstructed = _Hysteresis(0, int(cfg.end_seconds * s))  # cells must stay hidden to count
        self._outside = _Hysteresis(int(cfg.onset_seconds * s), int(cfg.end_seconds * s))
        self._moved = _Hysteresis(int(cfg.scene_settle_seconds * s), int(cfg.end_seconds * s))
        self.liveness = FrozenCheck(cfg)
        self.replay = ReplayCheck(cfg)
        self.obstruction = ObstructionCheck(cfg)
        self._onset_confidence: dict[str, float] = {}
        self._ref: npt.NDArray[np.float32] | None = None
        self._prev_z: npt.NDArray[np.float32] | None = None
        self._window: npt.NDArray[np.float32] | None = None
        self._blocked_ref: npt.NDArray[np.float32] | None = None  # the view before a part of it was blocked
        self._blocked_confidence = 0.0
        self._ref_cells: npt.NDArray[np.float32] | None = None  # mean grey per cell of the reference view
        self._blocked_details: dict[str, Any] = {}
        self.last_metrics: dict[str, float] = {}
        self._view: ViewRegion | None = None  # the digital zoom of the last analysed frame (None: full view)
        self.rebaselines = 0

    def rebaseline(self) -> None:
        """The officer zoomed or panned (a frame's ``view`` changed): the picture changed on purpose, so the scene,
        obstruction and replay references start again from the next frame. A condition already raised stays
        raised and ends by its own rules; one not yet raised starts over (a zoom is never a moved camera)."""
        self._ref = self._prev_z = self._blocked_ref = None
        self._moved.restart()
        self.obstruction = ObstructionCheck(self.cfg)
        self._obstructed.restart()
        self.replay = ReplayCheck(self.cfg)
        self._replayed.restart()
        self.rebaselines += 1

    def small(self, frame: Frame) -> npt.NDArray[np.uint8]:
        """The low-resolution grey copy everything is computed on (0-255 grey, from the luma plane)."""
        plane = luma(frame)
        h, w = plane.shape[:2]
        size = (self.cfg.width, max(8, round(h * self.cfg.width / w)))
        if frame.fmt == "yuv420p":
            return full_range(resize_area(plane, size))
        return np.asarray(resize_area(plane, size), dtype=np.uint8)

    def feed(self, frame: Frame, gps: GpsReading | None = None) -> list[VideoEvent]:
        if self._next_ns is not None and frame.mono_ns < self._next_ns:
            return []
        self._next_ns = frame.mono_ns + self._step_ns if self._next_ns is None else max(
            self._next_ns + self._step_ns, frame.mono_ns)
        events: list[VideoEvent] = []
        if (frame.view is None) != (self._view is None) or (frame.view is not None and not frame.view.same(self._view)):
            self._view = frame.view
            self.rebaseline()
        grey = self.small(frame)
        t = frame.mono_ns
        mean, std = float(grey.mean()), float(grey.std())
        self.last_metrics = {"mean": mean, "std": std}

        def emit(kind: EventType, phase: Phase | None, confidence: float = 1.0, **details: Any) -> None:
            if phase is None:
                return
            if phase == "onset":
                self._onset_confidence[kind] = confidence
            else:
                confidence = self._onset_confidence.pop(kind, confidence)
            events.append(VideoEvent(kind, phase, frame.index, frame.wall_ns, frame.mono_ns,
                                     tuple(sorted(details.items())), max(0.0, min(1.0, confidence))))

        # uniform: little structure, absolutely and, unless dark, for its brightness (a dim night view keeps
        # its contrast; a cap over the lens has none)
        dark = mean < self.cfg.dark_mean
        uniform = std < self.cfg.uniform_std and (dark or std < UNIFORM_CONTRAST * mean)
        emit("too_dark", self._dark.update(dark, t), _margin(mean, self.cfg.dark_mean), mean=round(mean, 2))
        emit("uniform", self._uniform.update(uniform, t), _margin(std, self.cfg.uniform_std), std=round(std, 2))
        if dark or uniform or self._dark.active or self._uniform.active:
            # blind: covered or dark is that, not also frozen, replayed, obstructed or moved
            self.liveness.reset()
            emit("frozen", self._frozen.update(False, t), reason="blind")
            emit("replayed", self._replayed.update(False, t), reason="blind")
            emit("obstructed", self._obstructed.update(False, t), reason="blind")
        else:
            self._check_live(frame, grey, t, emit)
        if self.cfg.geofence is not None and gps is not None and gps.fix is not None:
            inside, info = inside_geofence(self.cfg.geofence, gps.fix.lat, gps.fix.lon)
            emit("geofence", self._outside.update(not inside, t), 1.0, lat=round(gps.fix.lat, 7),
                 lon=round(gps.fix.lon, 7), **info)
        return events

    def _check_live(self, frame: Frame, grey: npt.NDArray[np.uint8], t: int, emit: Any) -> None:
        """Frozen, replayed, obstructed and moved, on a picture that is not blind."""
        live = self.liveness.update(luma(frame) if frame.fmt == "yuv420p" else frame.image, frame.sensor, t)
        emit("frozen", self._frozen.update(live.frozen, t), live.confidence, cause=live.cause, **dict(live.details))
        frozen = live.frozen or self._frozen.active
        sample = self.liveness.sample if self.liveness.sample is not None else grey
        replay = self.replay.update(grey, sample, t, exact_ok=not frozen and self.liveness.changed > 0)
        emit("replayed", self._replayed.update(replay.replayed and not frozen, t), replay.confidence,
             **dict(replay.details))
        settled = self._moved.active is False and not frozen
        obstruction = self.obstruction.update(grey, t, learn=settled and not self._obstructed.active)
        blocked = self._still_blocked(grey)
        by_change = blocked and not obstruction.obstructed  # no texture lost, but a part of the view changed
        emit("obstructed", self._obstructed.update(obstruction.obstructed or blocked, t),
             self._blocked_confidence if by_change else obstruction.confidence,
             **(self._blocked_details if by_change else dict(obstruction.details)))
        self.last_metrics.update(changed=self.liveness.changed, obstructed_fraction=obstruction.fraction)
        if not (obstruction.obstructed or blocked or self._obstructed.active):
            self._check_scene(grey, t, emit)

    def _still_blocked(self, grey: npt.NDArray[np.uint8]) -> bool:
        """A part of the view blocked by something without texture to lose (a board over smooth asphalt) lasts
        until the view matches the one before it again."""
        if self._blocked_ref is None:
            return False
        z = _normalise(grey)
        if self._blocked_ref.shape != z.shape or float(np.mean((z - self._blocked_ref) ** 2) / 2) < (
                self.cfg.scene_change_score / 2):
            self._blocked_ref = None
            return False
        return True

    def _partly_changed(self, grey: npt.NDArray[np.uint8]) -> float:
        """Share of the grid's cells whose brightness changed against the reference while the others stayed as
        they were; 1.0 when the change is not so cleanly split (a turned or relit view changes every cell a bit)."""
        assert self._ref_cells is not None
        moved = np.abs(_cells(grey) - self._ref_cells)
        changed, calm = moved > CELL_CHANGED, moved < CELL_CALM
        if float(np.mean(changed | calm)) < PARTIAL_CLEAN:
            return 1.0
        return float(np.mean(changed))

    def _check_scene(self, grey: npt.NDArray[np.uint8], t: int, emit: Any) -> None:
        """Moved/turned = a *settled* view that differs from the reference (or is shifted against it).

        A car or a person crossing the view changes many pixels too, but keeps changing; so a
        candidate needs little frame-to-frame motion, and must persist ``scene_settle_seconds``.
        """
        z = _normalise(grey)
        prev_z, self._prev_z = self._prev_z, z
        if self._ref is None or self._ref.shape != z.shape or prev_z is None or prev_z.shape != z.shape:
            self._ref = z.copy()
            self._ref_cells = _cells(grey)
            self._window = hanning((z.shape[1], z.shape[0]))
            return
        score = float(np.mean((z - self._ref) ** 2) / 2)  # = 1 - correlation coefficient
        motion = float(np.mean((z - prev_z) ** 2) / 2)
        (dx, dy), response = phase_correlate(self._ref, z, self._window)
        shift = math.hypot(dx, dy)
        self.last_metrics.update(score=score, motion=motion, shift=shift, response=response)
        settled = motion < self.cfg.scene_motion_max
        shifted = shift > self.cfg.scene_shift_px and response > self.cfg.scene_shift_response
        raw = settled and (score > self.cfg.scene_change_score or shifted)
        if self._moved.active:
            raw = not settled or score > self.cfg.scene_change_score or shifted
        phase = self._moved.update(raw, t)
        if phase == "onset" and not shifted and (
                self.cfg.obstructed_fraction <= (part := self._partly_changed(grey)) < PARTIAL_MAX):
            # part of a fixed view changed and stayed so, the rest did not move: blocked, not moved. The old
            # view stays the reference; "obstructed" ends when the view matches it again.
            self._moved.active = False
            self._blocked_ref = self._ref.copy()
            self._blocked_confidence = round(0.5 + 0.5 * min(1.0, part), 3)
            self._blocked_details = {"fraction": round(part, 3), "cause": "partial_change"}
            return
        if phase == "onset":
            confidence = max(min(1.0, score / self.cfg.scene_change_score - 1.0),
                             min(1.0, shift / self.cfg.scene_shift_px - 1.0) if shifted else 0.0)
            emit("scene_change", phase, 0.5 + 0.5 * confidence, score=round(score, 3), shift_px=round(shift, 2),
                 dx=round(dx, 2), dy=round(dy, 2))
        elif phase == "end":
            emit("scene_change", phase, score=round(score, 3))
        if self._moved.active:
            self._ref = z.copy()  # follow the new view; "end" once it has stayed put for end_seconds
            self._ref_cells = _cells(grey)
        elif settled and not shifted and score < self.cfg.scene_change_score / 2:
            # follow slow light changes, but never absorb a shift or a changed view bit by bit
            accumulate_weighted(z, self._ref, 0.05)
            if self._ref_cells is not None:
                accumulate_weighted(_cells(grey), self._ref_cells, 0.05)


def _cells(grey: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Mean grey of each cell of the 8x6 grid."""
    return np.asarray(resize_area(grey.astype(np.float32), (8, 6)), dtype=np.float32)


def _margin(value: float, threshold: float) -> float:
    """Confidence of a below-threshold reading: 0.5 at the threshold, 1.0 at zero."""
    return 0.5 + 0.5 * max(0.0, min(1.0, 1.0 - value / threshold)) if threshold > 0 else 1.0

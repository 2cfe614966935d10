"""Anti-falsification checks on a low-resolution grey copy of the frames.

Covered lens, too dark, uniform picture, frozen feed, camera moved/turned, and position outside
the registered site: exactly the tricks that send an inspection back on site. Each condition has
an onset and an end (with hold times, so one odd frame is not an alarm) and each becomes a frozen
:class:`VideoEvent`, which the sealer turns into an ``event`` record.
"""

from __future__ import annotations

import collections
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from agent.core.model import Frame, GpsReading
from agent.core.vocab import AnalyticsEvent as EventType
from agent.video.settings import AnalyticsConfig, GeofenceConfig

Phase = Literal["onset", "end"]
EARTH_RADIUS_M = 6_371_008.8
FROZEN_SAMPLE_WIDTH = 320
CONTENT_WIDTH = 40
MAX_REPEAT_GAP_NS = 2_000_000_000  # longest stretch without an exact repeat a frozen re-encoded feed shows


@dataclass(frozen=True)
class VideoEvent:
    """One onset or end of a condition, at the frame where it was decided."""

    type: EventType
    phase: Phase
    frame_index: int
    wall_ns: int
    mono_ns: int
    details: tuple[tuple[str, Any], ...] = ()

    def as_extra(self) -> dict[str, Any]:
        """The ``extra`` of the sealed ``event`` record."""
        return {"type": self.type, "phase": self.phase, "frame_index": self.frame_index,
                "details": dict(self.details)}


class _Hysteresis:
    """A condition that must hold ``onset_ns`` to start and be clear ``end_ns`` to end."""

    def __init__(self, onset_ns: int, end_ns: int) -> None:
        self.onset_ns, self.end_ns = onset_ns, end_ns
        self.active = False
        self._since: int | None = None  # when the raw condition last flipped against the state

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
        self._outside = _Hysteresis(int(cfg.onset_seconds * s), int(cfg.end_seconds * s))
        self._moved = _Hysteresis(int(cfg.scene_settle_seconds * s), int(cfg.end_seconds * s))
        self._prev: npt.NDArray[np.uint8] | None = None
        self._still_since: int | None = None
        self._content_ref: npt.NDArray[np.int16] | None = None
        self._seen: collections.deque[tuple[int, bytes]] = collections.deque()  # recent samples' digests
        self._repeat_since: int | None = None  # first exact repeat of the current still stretch
        self._last_repeat: int | None = None
        self._run = 0  # consecutive analysed frames that were not exact repeats
        self._max_run = 0  # the longest such run since _repeat_since (the encoder's keyframe rhythm)
        self._allowed_run = 0  # fixed at the onset: a longer run means the picture is live again
        self._ref: npt.NDArray[np.float32] | None = None
        self._prev_z: npt.NDArray[np.float32] | None = None
        self._window: npt.NDArray[np.float32] | None = None
        self.last_metrics: dict[str, float] = {}

    def small(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The low-resolution grey copy everything is computed on."""
        h, w = image.shape[:2]
        size = (self.cfg.width, max(8, round(h * self.cfg.width / w)))
        reduced = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(reduced, cv2.COLOR_BGR2GRAY) if reduced.ndim == 3 else reduced
        return np.asarray(grey, dtype=np.uint8)

    def feed(self, frame: Frame, gps: GpsReading | None = None) -> list[VideoEvent]:
        if self._next_ns is not None and frame.mono_ns < self._next_ns:
            return []
        self._next_ns = frame.mono_ns + self._step_ns if self._next_ns is None else max(
            self._next_ns + self._step_ns, frame.mono_ns)
        events: list[VideoEvent] = []
        grey = self.small(frame.image)
        t = frame.mono_ns
        mean, std = float(grey.mean()), float(grey.std())
        self.last_metrics = {"mean": mean, "std": std}

        def emit(kind: EventType, phase: Phase | None, **details: Any) -> None:
            if phase is not None:
                events.append(VideoEvent(kind, phase, frame.index, frame.wall_ns, frame.mono_ns,
                                         tuple(sorted(details.items()))))

        emit("too_dark", self._dark.update(mean < self.cfg.dark_mean, t), mean=round(mean, 2))
        emit("uniform", self._uniform.update(std < self.cfg.uniform_std, t), std=round(std, 2))
        self._check_frozen(frame.image, t, emit)
        blind = std < self.cfg.uniform_std or mean < self.cfg.dark_mean
        if not blind:
            self._check_scene(grey, t, emit)
        if self.cfg.geofence is not None and gps is not None and gps.fix is not None:
            inside, info = inside_geofence(self.cfg.geofence, gps.fix.lat, gps.fix.lon)
            emit("geofence", self._outside.update(not inside, t), lat=round(gps.fix.lat, 7),
                 lon=round(gps.fix.lon, 7), **info)
        return events

    def _check_frozen(self, image: npt.NDArray[np.uint8], t: int, emit: Any) -> None:
        """Frozen = no new content, and exact frame repeats, for ``frozen_seconds``.

        A frozen picture that went through an encoder again (an IP camera or recorder replaying a still
        image, a looped clip) is not pixel-identical: keyframes and rate control add flicker of a few grey
        levels. Between keyframes, though, its decoded frames repeat exactly, which a live sensor never
        does (its noise changes some pixels every frame; measured: not one exact repeat in the shared real
        clips). An MPEG-4 encoder refines every P-frame, but decodes each GOP of the same picture to the
        same frames, so a frame equal to any of the last few seconds' frames counts as a repeat too. The
        condition is: content unchanged on a 40-pixel-wide averaged copy (flicker averages out, a moving
        object does not), and exact repeats on a nearest-neighbour sample (averaging would hide a live
        sensor's noise) at least every ``MAX_REPEAT_GAP_NS``. It ends when the content changes
        or when frames stop repeating for longer than the feed's own keyframe rhythm seen before the onset.
        """
        h, w = image.shape[:2]
        sw = min(w, FROZEN_SAMPLE_WIDTH)
        sample = np.asarray(cv2.resize(image, (sw, max(1, round(h * sw / w))), interpolation=cv2.INTER_NEAREST),
                            dtype=np.uint8)
        grey = sample if sample.ndim == 2 else cv2.cvtColor(sample, cv2.COLOR_BGR2GRAY)
        content = np.asarray(cv2.resize(grey, (CONTENT_WIDTH, max(1, round(h * CONTENT_WIDTH / w))),
                                        interpolation=cv2.INTER_AREA), dtype=np.int16)
        prev, self._prev = self._prev, sample
        ref = self._content_ref
        if prev is None or prev.shape != sample.shape or ref is None or ref.shape != content.shape:
            self._content_ref, self._repeat_since = content, None
            return
        changed = float(np.count_nonzero(cv2.absdiff(sample, prev))) / sample.size
        delta = float(np.abs(content - ref).max())
        digest = hashlib.blake2b(sample.tobytes(), digest_size=16).digest()
        # an encoder fed the same picture decodes to the same frames GOP after GOP: an exact match with any
        # recent frame is a repeat too (MPEG-4 refines every P-frame, so consecutive frames differ)
        repeat = changed <= self.cfg.frozen_changed_fraction or any(d == digest for _, d in self._seen)
        self._seen.append((t, digest))
        while self._seen and self._seen[0][0] < t - 2 * MAX_REPEAT_GAP_NS:
            self._seen.popleft()
        self.last_metrics.update(changed=changed, content_delta=delta, repeat=float(repeat))
        live = False
        if delta > self.cfg.frozen_content_delta:  # new content: a new reference, a new still stretch
            self._content_ref, self._repeat_since, live = content, None, True
        elif repeat:
            if self._repeat_since is None:
                self._repeat_since, self._max_run = t, 0
            self._last_repeat, self._run = t, 0
        else:
            self._run += 1
            if self._frozen.active:
                live = self._run > self._allowed_run
            elif self._repeat_since is not None:
                if t - (self._last_repeat or t) > MAX_REPEAT_GAP_NS:
                    self._repeat_since = None
                else:
                    self._max_run = max(self._max_run, self._run)
        if live:
            self._repeat_since = None
        still_s = 0.0 if self._repeat_since is None else (t - self._repeat_since) / 1e9
        raw = not live and (self._frozen.active or still_s >= self.cfg.frozen_seconds)
        phase = self._frozen.update(raw, t)
        if phase == "onset":
            self._allowed_run = self._max_run
        emit("frozen", phase, still_s=round(still_s, 2), changed=round(changed, 6), content_delta=round(delta, 2))

    def _check_scene(self, grey: npt.NDArray[np.uint8], t: int, emit: Any) -> None:
        """Moved/turned = a *settled* view that differs from the reference (or is shifted against it).

        A car or a person crossing the view changes many pixels too, but keeps changing; so a
        candidate needs little frame-to-frame motion, and must persist ``scene_settle_seconds``.
        """
        z = _normalise(grey)
        prev_z, self._prev_z = self._prev_z, z
        if self._ref is None or self._ref.shape != z.shape or prev_z is None or prev_z.shape != z.shape:
            self._ref = z.copy()
            self._window = np.asarray(cv2.createHanningWindow((z.shape[1], z.shape[0]), cv2.CV_32F),
                                      dtype=np.float32)
            return
        score = float(np.mean((z - self._ref) ** 2) / 2)  # = 1 - correlation coefficient
        motion = float(np.mean((z - prev_z) ** 2) / 2)
        # phaseCorrelate windows its inputs in place: give it copies
        (dx, dy), response = cv2.phaseCorrelate(self._ref.copy(), z.copy(), self._window)
        shift = math.hypot(dx, dy)
        self.last_metrics.update(score=score, motion=motion, shift=shift, response=response)
        settled = motion < self.cfg.scene_motion_max
        shifted = shift > self.cfg.scene_shift_px and response > self.cfg.scene_shift_response
        raw = settled and (score > self.cfg.scene_change_score or shifted)
        if self._moved.active:
            raw = not settled or score > self.cfg.scene_change_score or shifted
        phase = self._moved.update(raw, t)
        if phase == "onset":
            emit("scene_change", phase, score=round(score, 3), shift_px=round(shift, 2),
                 dx=round(dx, 2), dy=round(dy, 2))
        elif phase == "end":
            emit("scene_change", phase, score=round(score, 3))
        if self._moved.active:
            self._ref = z.copy()  # follow the new view; "end" once it has stayed put for end_seconds
        elif settled and not shifted and score < self.cfg.scene_change_score / 2:
            # follow slow light changes, but never absorb a shift or a changed view bit by bit
            cv2.accumulateWeighted(z, self._ref, 0.05)

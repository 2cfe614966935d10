"""Turns what the recorder hands over (closed segments, stills, analytics events) into sealed records.

One named worker thread does the slow parts -- fsync, C2PA embedding, hashing, signing -- so the
frame loop only enqueues frozen values. Events are sealed as soon as they are decided (a crash must
not lose "lens covered"); a segment is sealed right after it closes (goal: within 1 s).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from agent.capture.base import encode_jpeg
from agent.core.errors import AgentError
from agent.core.memory import trim_heap
from agent.core.model import Moment, SealedItem
from agent.core.threads import Worker
from agent.signing.c2pa import C2paSigner
from agent.signing.exif import DeviceTags, with_exif
from agent.video.analytics import VideoEvent
from agent.video.recorder import ClosedSegment, MomentSource, StillShot
from agent.video.settings import VideoConfig

log = logging.getLogger(__name__)


class SealerLike(Protocol):
    """agent.device.sealer.Sealer's seal()."""

    def seal(self, kind: str, moment: Moment, *, media: Path | bytes | None = None,
             media_type: str | None = None, ext: str | None = None, end: Moment | None = None,
             extra: Mapping[str, Any] | None = None) -> SealedItem: ...


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


@dataclass
class SealStats:
    """What the worker measured: segment latency from close to sealed, C2PA time, failures."""

    segments: int = 0
    stills: int = 0
    events: int = 0
    errors: list[str] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    c2pa_s: list[float] = field(default_factory=list)
    max_queue: int = 0

    def summary(self) -> dict[str, Any]:
        return {"segments": self.segments, "stills": self.stills, "events": self.events,
                "errors": len(self.errors), "max_queue": self.max_queue,
                "seal_latency_p50_s": _pct(self.latency_s, 0.5), "seal_latency_p95_s": _pct(self.latency_s, 0.95),
                "c2pa_p50_s": _pct(self.c2pa_s, 0.5), "c2pa_p95_s": _pct(self.c2pa_s, 0.95)}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _us(ns: int) -> int:
    return ns // 1000


def segment_extra(seg: ClosedSegment) -> dict[str, Any]:
    """The segment record's ``extra``: everything needed to check the file against the frames."""
    m0, w0 = seg.frame_mono_ns[0], seg.frame_wall_ns[0]
    track = [{"wall_us": _us(p.wall_ns), "mono_us": _us(p.mono_ns), **p.gps.as_record()} for p in seg.gps_track]
    with_fix = sum(1 for p in seg.gps_track if p.gps.fix is not None)
    return {
        "stream": {"id": seg.stream_id, "segment_no": seg.segment_no},
        "frames": seg.frame_count,
        "first_frame_index": seg.first_index,
        "duration_s": round(seg.duration_s, 6),
        "nominal_frame_us": _us(seg.nominal_frame_ns),
        # per-frame times relative to the first frame (= the record's captured time), microseconds
        "frame_times": {"mono_us": [_us(m - m0) for m in seg.frame_mono_ns],
                        "wall_us": [_us(w - w0) for w in seg.frame_wall_ns]},
        "gps_track": track,
        "gps_coverage": round(with_fix / len(track), 3) if track else 0.0,
        "encoder": seg.encoder.as_record(),
        "events": [{"type": e.type, "phase": e.phase, "frame_index": e.frame_index, "wall_us": _us(e.wall_ns)}
                   for e in seg.events],
    }


class MediaSealer:
    """Queue + named worker thread between the recorder and the Sealer."""

    def __init__(self, sealer: SealerLike, cfg: VideoConfig, *, staging: Callable[[str], Path],
                 sensors: MomentSource, c2pa: C2paSigner | None = None, camera: str = "",
                 on_sealed: Callable[[SealedItem], None] | None = None, device: DeviceTags | None = None) -> None:
        self._sealer = sealer
        self._cfg = cfg
        self._staging = staging
        self._sensors = sensors
        self._c2pa = c2pa
        self._camera = camera
        # EXIF names the device; without explicit tags they come from the sealer (its device and site)
        self._device = device or DeviceTags(str(getattr(sealer, "device_id", "")),
                                            str(getattr(sealer, "site_id", "")), camera)
        self._on_sealed = on_sealed
        self._q: queue.Queue[ClosedSegment | StillShot | VideoEvent | None] = queue.Queue(cfg.queue_size)
        self._thread = Worker("video-sealer", self._run)
        self._started = False
        self._closed = False
        self.stats = SealStats()
        self._prev_manifest: dict[str, str] = {}

    # recorder callbacks (frame loop thread): enqueue only
    def submit(self, job: ClosedSegment | StillShot | VideoEvent) -> None:
        if self._closed:
            raise AgentError("media sealer is closed")
        try:
            self._q.put_nowait(job)
        except queue.Full:
            log.warning("video sealing is behind (%d queued); the recorder waits", self._q.qsize())
            self._q.put(job)  # back-pressure rather than losing evidence
        self.stats.max_queue = max(self.stats.max_queue, self._q.qsize())

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Seal everything queued, then stop the worker; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._q.put(None)  # seal what is queued first, then end
            self._thread.stop(timeout)
        if self._c2pa is not None:
            self._c2pa.close()

    def _run(self, _stopping: threading.Event) -> None:  # ends at the None sentinel, after the queue
        while (job := self._q.get()) is not None:
            try:
                if isinstance(job, ClosedSegment):
                    self._seal_segment(job)
                    trim_heap()  # signing and hashing a segment leave megabytes of freed buffers behind
                elif isinstance(job, StillShot):
                    self._seal_still(job)
                else:
                    self._seal_event(job)
            except Exception as exc:  # keep sealing the next items; the failure is counted and logged
                self.stats.errors.append(f"{type(job).__name__}: {exc}")
                log.exception("sealing %s failed", type(job).__name__)
                if isinstance(job, StillShot):
                    job.done.set_exception(exc)

    def _embed(self, src: Path, mime: str, ext: str, title: str, moment: Moment,
               extra: dict[str, Any]) -> tuple[Path, dict[str, Any] | None]:
        """C2PA-sign into a new staging file; on failure keep the plain file and say why in the record."""
        if self._c2pa is None:
            return src, None
        dst = self._staging(ext)
        try:
            res = self._c2pa.sign_file(src, dst, mime, title=title, gps=moment.gps, extra=extra,
                                       captured_ns=moment.wall_ns)
        except (AgentError, OSError) as exc:
            dst.unlink(missing_ok=True)
            log.error("C2PA embedding failed, sealing without it: %s", exc)
            return src, {"error": str(exc)}
        self.stats.c2pa_s.append(res.seconds)
        src.unlink()
        info: dict[str, Any] = {"manifest": res.manifest_id, "sign_s": round(res.seconds, 4)}
        if res.timestamped or res.tsa_error:
            info["tsa"] = "time-stamped" if res.timestamped else f"TSA unreachable: {res.tsa_error}"
        return dst, info

    def _who(self) -> dict[str, str]:
        """Device and site for the manifest's record assertion (the lone-file verifier reports them)."""
        return {"device_id": self._device.device_id, "site_id": self._device.site_id}

    def _seal_segment(self, seg: ClosedSegment) -> None:
        extra = segment_extra(seg)
        path = seg.path
        if self._cfg.c2pa.enabled and self._cfg.c2pa.video:
            # like C2PA live video (section 19): stream id, sequence number and the previous manifest
            prev = self._prev_manifest.get(seg.stream_id)
            ref = {"stream": seg.stream_id, "segment_no": seg.segment_no, "first_frame_index": seg.first_index,
                   "previous_manifest": prev, **self._who()}
            path, extra["c2pa"] = self._embed(path, "video/mp4", "mp4", f"segment {seg.segment_no}",
                                              seg.start, ref)
            if extra["c2pa"] and "manifest" in extra["c2pa"]:
                extra["c2pa"]["previous_manifest"] = prev
                self._prev_manifest = {seg.stream_id: extra["c2pa"]["manifest"]}
        if path == seg.path:
            _fsync(path)
        item = self._sealer.seal("segment", seg.start, media=path, media_type="video/mp4", ext="mp4",
                                 end=seg.end, extra=extra)
        self.stats.latency_s.append((time.monotonic_ns() - seg.closed_mono_ns) / 1e9)
        self.stats.segments += 1
        self._notify(item)

    def _seal_still(self, shot: StillShot) -> None:
        frame = shot.frame
        # EXIF before C2PA and sealing: both hashes cover it (same moment and fix as the record)
        jpeg = with_exif(encode_jpeg(frame, self._cfg.still_quality), shot.moment, self._device,
                         width=frame.width, height=frame.height)
        extra: dict[str, Any] = {"reason": shot.reason, "frame_index": frame.index,
                                 "width": frame.width, "height": frame.height,
                                 "quality": self._cfg.still_quality, "camera": self._camera,
                                 "from": "video", "overlay": self._cfg.overlay, **dict(shot.extra)}
        media: Path | bytes = jpeg
        if self._cfg.c2pa.enabled and self._cfg.c2pa.stills:
            raw = self._staging("jpg")
            raw.write_bytes(jpeg)
            media, extra["c2pa"] = self._embed(raw, "image/jpeg", "jpg", f"still {frame.index}", shot.moment,
                                               {"frame_index": frame.index, "reason": shot.reason,
                                                **self._who()})
            if media == raw:  # embedding failed: seal the plain JPEG bytes, drop the temp file
                media = jpeg
                raw.unlink(missing_ok=True)
        item = self._sealer.seal("still", shot.moment, media=media, media_type="image/jpeg", ext="jpg",
                                 extra=extra)
        self.stats.stills += 1
        shot.done.set_result(item)
        self._notify(item)

    def _seal_event(self, ev: VideoEvent) -> None:
        # GPS and time quality read now (milliseconds after the decision), times from the deciding frame
        moment = replace(self._sensors.moment(), wall_ns=ev.wall_ns, mono_ns=ev.mono_ns)
        item = self._sealer.seal("event", moment, extra=ev.as_extra())
        self.stats.events += 1
        self._notify(item)

    def _notify(self, item: SealedItem) -> None:
        if self._on_sealed is not None:
            try:
                self._on_sealed(item)
            except Exception:
                log.exception("on_sealed hook failed for seq %d", item.seq)

"""kill -9 the running agent N times at random moments, restart it each time, then account for everything.

One kill in five lands during start-up (before the restart record is sealed); the others land at a
random moment up to ``max_s`` after it. After the loop the agent runs once more in this process, stops
capture and drains (uplink and anchors), so the officer's ingest must end up with every sealed item.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.device.config import load_config
from tests.faults.rig import Rig, wait_until


@dataclass
class Kill:
    n: int
    at_s: float  # after spawn
    during_startup: bool
    last_seq: int  # newest sealed record on disk after the kill (-1: none)
    last_kind: str
    sealed_this_run: int
    exposure_s: float | None  # kill time minus the capture time of the newest still: what was not yet sealed
    video_exposure_s: float | None = None  # kill time minus the end of the newest sealed segment


@dataclass
class CrashLoopResult:
    kills: list[Kill] = field(default_factory=list)
    restart_records: list[dict[str, Any]] = field(default_factory=list)
    orphans: int = 0
    orphan_bytes: int = 0
    segments: int = 0
    duration_s: float = 0.0
    drain_s: float = 0.0
    drained: bool = False
    final_items: int = 0

    def figures(self) -> dict[str, Any]:
        exp = [k.exposure_s for k in self.kills if k.exposure_s is not None]
        vexp = [k.video_exposure_s for k in self.kills if k.video_exposure_s is not None]
        return {"kills": len(self.kills), "during_startup": sum(k.during_startup for k in self.kills),
                "items": self.final_items, "restart_records": len(self.restart_records), "orphans": self.orphans,
                "exposure_s_median": round(statistics.median(exp), 3) if exp else None,
                "exposure_s_max": round(max(exp), 3) if exp else None,
                "segments": self.segments, "orphan_bytes": self.orphan_bytes,
                "video_exposure_s_median": round(statistics.median(vexp), 3) if vexp else None,
                "video_exposure_s_max": round(max(vexp), 3) if vexp else None,
                "loop_s": round(self.duration_s, 1), "final_drain_s": round(self.drain_s, 2),
                "drained": self.drained}

    def as_dict(self) -> dict[str, Any]:
        return {"figures": self.figures(), "kills": [asdict(k) for k in self.kills]}


def _newest_still_ns(records: list[dict[str, Any]], after_seq: int) -> int | None:
    stills = [r for r in records if r["kind"] == "still" and r["seq"] > after_seq]
    return int(stills[-1]["captured"]["wall_us"]) * 1000 if stills else None


def _newest_segment_end_ns(records: list[dict[str, Any]], after_seq: int) -> int | None:
    segs = [r for r in records if r["kind"] == "segment" and r["seq"] > after_seq and "end" in r]
    return int(segs[-1]["end"]["wall_us"]) * 1000 if segs else None


def crash_loop(rig: Rig, kills: int, *, seed: int = 1, max_s: float = 3.0, startup_share: float = 0.2,
               log: Any = None) -> CrashLoopResult:
    rng = random.Random(seed)
    res = CrashLoopResult()
    t0 = time.monotonic()
    for n in range(kills):
        before = rig.sealed()
        prev_max = before[-1]["seq"] if before else -1
        spawn = time.monotonic()
        rig.start_agent()
        startup = rng.random() < startup_share
        if startup:
            time.sleep(rng.uniform(0.0, 0.8))
        else:
            first = prev_max + 1
            ok = wait_until(lambda: any(r["kind"] == "restart" for r in rig.sealed()[first:]), 20)  # noqa: B023
            assert ok, f"kill {n}: the agent sealed no restart record within 20 s; see {rig.log}"
            time.sleep(rng.uniform(0.0, max_s))
        kill_wall_ns = time.time_ns()
        rig.kill_agent()
        at = time.monotonic() - spawn
        after = rig.sealed()
        last: dict[str, Any] = after[-1] if after else {"seq": -1, "kind": "-"}
        newest = _newest_still_ns(after, prev_max)
        seg_end = _newest_segment_end_ns(after, prev_max)
        k = Kill(n=n, at_s=round(at, 3), during_startup=startup, last_seq=int(last["seq"]),
                 last_kind=str(last["kind"]), sealed_this_run=int(last["seq"]) - prev_max,
                 exposure_s=None if newest is None else round((kill_wall_ns - newest) / 1e9, 3),
                 video_exposure_s=None if seg_end is None else round((kill_wall_ns - seg_end) / 1e9, 3))
        res.kills.append(k)
        if log is not None:
            log(k)
    res.duration_s = time.monotonic() - t0
    res.drained, res.drain_s = final_run(rig)
    records = rig.sealed()
    res.final_items = len(records)
    res.restart_records = [r for r in records if r["kind"] == "restart"]
    res.orphans = sum(len(r["extra"].get("orphans", [])) for r in res.restart_records)
    res.orphan_bytes = sum(o["size"] for r in res.restart_records for o in r["extra"].get("orphans", []))
    res.segments = sum(r["kind"] == "segment" for r in records)
    return res


def final_run(rig: Rig, seconds: float = 1.0, drain_timeout: float = 90.0) -> tuple[bool, float]:
    """Start the agent in this process, let it run briefly, stop capture and drain: (drained, seconds)."""
    from agent.device.runtime import Agent

    agent = Agent(load_config(rig.config))
    try:
        agent.start()
        agent.run(seconds)
        agent.stop_capture()  # seals the final checkpoint
        t = time.monotonic()
        drained = agent.drain(drain_timeout)
        if drained and agent.anchoring is not None:
            drained = wait_anchored(rig, agent, drain_timeout)
            drained = drained and agent.drain(drain_timeout)  # the receipts sealed meanwhile go out too
        return drained, time.monotonic() - t
    finally:
        agent.close()


def wait_anchored(rig: Rig, agent: Any, timeout: float) -> bool:
    """The newest checkpoint (the final one, over everything sealed before the stop) has every receipt."""
    return wait_until(lambda: not agent.anchoring.anchorer.pending(), timeout, 0.2)

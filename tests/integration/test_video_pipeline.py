"""Whole video pipeline against the real Vault and Sealer: synthetic camera -> recorder -> C2PA -> sealed.

Checks every sealed segment with ffprobe and c2pa-python's Reader, the still and event records, and
the offline verifier with the segment checker.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from agent.capture.base import CaptureSettings
from agent.capture.synthetic import SyntheticBackend
from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.c2pa import check_c2pa
from agent.signing.keys import DeviceIdentity
from agent.signing.verify import check
from agent.video.service import VideoService
from agent.video.settings import VideoConfig
from agent.video.verify_segments import segment_checker
from tests.support.helpers import moment
from tests.support.media import KNOWN_CORE_FINDING, ffprobe

FPS = 10.0


class Sensors:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def moment(self):  # type: ignore[no-untyped-def]
        return moment(self.clock)




def test_segments_stills_events_sealed_and_verified(vault: Vault, sealer: Sealer, identity: DeviceIdentity,
                                                    manual_clock: ManualClock) -> None:
    sealer.start(moment(manual_clock))
    cfg = VideoConfig(segment_seconds=2, fragment_seconds=0.5, fps=FPS, encoder="libx264", preset="ultrafast",
                      overlay=True)
    svc = VideoService(cfg, sealer=sealer, vault=vault, identity=identity, sensors=Sensors(manual_clock),
                       device_id="test-device", site_id="test-site", camera="synthetic")
    svc.start()
    cam = SyntheticBackend(CaptureSettings(width=160, height=120, fps=FPS, realtime=False), manual_clock)
    still = None
    with cam:
        for i in range(85):
            frame = cam.read()
            manual_clock.advance(1 / FPS)
            if 25 <= i < 55:  # lens covered for 3 s
                frame = dataclasses.replace(frame, image=np.full_like(frame.image, 12))
            if i == 12:
                still = svc.request_still()
            svc.push(frame)
    svc.close()
    svc.close()
    stats = svc.media.stats.summary()
    assert stats["segments"] == 5 and stats["stills"] == 1 and stats["errors"] == 0, stats
    assert still is not None and still.result(timeout=5).kind == "still"

    segs = [it for it in (sealed(vault, s) for s in range(sealer.next_seq)) if it["kind"] == "segment"]
    assert [s["extra"]["frames"] for s in segs] == [20, 20, 20, 20, 5]
    for s in segs:
        media = Path(vault.path / "items" / s["_bucket"] / s["media"]["name"])
        probe = ffprobe(media)
        assert probe["codec"] == "h264" and abs(probe["frames"] - s["extra"]["frames"]) <= 1
        assert abs(probe["duration"] - s["extra"]["duration_s"]) <= 1 / FPS
        c2 = check_c2pa(media)
        assert c2["active_manifest"] == s["extra"]["c2pa"]["manifest"]
        assert c2["failure_codes"] == ["signingCredential.untrusted"]
        assert s["extra"]["gps_coverage"] == 1.0 and s["end"]["mono_us"] > s["captured"]["mono_us"]
    manifests = [s["extra"]["c2pa"] for s in segs]
    assert [m["previous_manifest"] for m in manifests] == [None] + [m["manifest"] for m in manifests[:-1]]
    events = [it["extra"] for it in (sealed(vault, s) for s in range(sealer.next_seq)) if it["kind"] == "event"]
    assert {(e["type"], e["phase"]) for e in events} >= {("uniform", "onset"), ("uniform", "end"),
                                                        ("too_dark", "onset")}
    assert any(e["type"] == "uniform" for e in segs[1]["extra"]["events"])
    jpg = next(it for it in (sealed(vault, s) for s in range(sealer.next_seq)) if it["kind"] == "still")
    assert check_c2pa(vault.path / "items" / jpg["_bucket"] / jpg["media"]["name"])["failure_codes"] == [
        "signingCredential.untrusted"]

    report = check(vault.path, checkers=[segment_checker()])
    summary = report.sections["segments"]
    assert [s["frames"] for s in summary] == [20, 20, 20, 20, 5] and summary[1]["events"]
    assert all(KNOWN_CORE_FINDING in p["problem"] for p in report.problems), report.problems


def sealed(vault: Vault, seq: int) -> dict:  # type: ignore[type-arg]
    import json

    from agent.evidence.vault import bucket_of

    bucket = bucket_of(seq)
    path = next((vault.path / "items" / bucket).glob(f"{seq:012d}.*.rec"))
    rec = json.loads(path.read_bytes().split(b"\n", 1)[0])
    rec["_bucket"] = bucket
    return rec


def test_c2pa_failure_never_loses_the_segment(vault: Vault, sealer: Sealer, identity: DeviceIdentity,
                                              manual_clock: ManualClock) -> None:
    """A signer that fails (secure element gone): the segment is still sealed, the record says why."""
    from agent.signing.c2pa import C2paSigner
    from agent.video.recorder import Recorder
    from agent.video.sealing import MediaSealer
    from tests.support.media import make_frames

    def broken(data: bytes) -> bytes:
        raise OSError("secure element not responding")

    sealer.start(moment(manual_clock))
    cfg = VideoConfig(segment_seconds=1, fragment_seconds=0.5, fps=FPS, encoder="libx264", preset="ultrafast")
    media = MediaSealer(sealer, cfg, staging=vault.staging_path, sensors=Sensors(manual_clock),
                        c2pa=C2paSigner(broken, identity.chain))
    media.start()
    rec = Recorder(cfg, staging=vault.staging_path, sensors=Sensors(manual_clock), on_segment=media.submit)
    for f in make_frames(manual_clock, 15):
        rec.push(f)
    rec.close()
    media.close()
    segs = [sealed(vault, s) for s in range(sealer.next_seq)]
    segs = [s for s in segs if s["kind"] == "segment"]
    assert [s["extra"]["frames"] for s in segs] == [10, 5]
    assert all("error" in s["extra"]["c2pa"] for s in segs)
    assert not any((vault.path / "staging").iterdir())  # nothing left behind

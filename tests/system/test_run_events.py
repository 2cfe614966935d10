"""Anti-falsification events through the real `evidence-agent run`: sealed AND alerted, saying which event.

The camera is the opencv backend replaying a clip made here (libx264, ordinary settings): live, covered,
live, dark, live, frozen, live, then the camera turned; the simulated GPS is outside the geofence.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.field_site import FieldSite, agent_cli, events, records, write_clip

ANALYTICS = {"onset_seconds": 0.5, "end_seconds": 1.0, "frozen_seconds": 2.0, "scene_settle_seconds": 1.5,
             "geofence": {"centre": [48.0, 11.0], "radius_m": 100.0}}
SCENES = [("live", 2.5), ("cover", 3.0), ("live", 2.5), ("dark", 3.0), ("live", 2.5), ("frozen", 4.0),
          ("live", 2.5), ("moved", 5.0)]

FPS = 10
WHERE = {"uniform": "cover", "too_dark": "dark", "frozen": "frozen", "scene_change": "moved"}


def scene_frames(name: str) -> tuple[int, int]:
    """Frame indexes in which the onset for scene ``name`` must be decided (the scene, plus 1 s after)."""
    start = 0
    for scene, seconds in SCENES:
        if scene == name:
            return start, start + round((seconds + 1.0) * FPS)
        start += round(seconds * FPS)
    raise KeyError(name)


def test_every_event_type_is_sealed_and_alerted(site: FieldSite, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "tamper.mp4", SCENES)
    config = site.device_config(tmp_path / "dev", "cam-events",
                                capture={"backend": "opencv", "source": str(clip), "still_interval_s": 5.0},
                                video={"analytics": ANALYTICS})
    out = tmp_path / "received"
    ingest = site.start_ingest(out, "--idle", "10")
    try:
        res = agent_cli("run", "--config", str(config), "--seconds", "60", "--drain-timeout", "30")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Traceback" not in res.stderr, res.stderr
        log, _ = ingest.communicate(timeout=90)
    finally:
        ingest.kill()
    sealed = events(tmp_path / "dev" / "vault")
    onsets = [(r["extra"]["type"], r["extra"].get("frame_index")) for r in records(tmp_path / "dev" / "vault")
              if r["kind"] == "event" and r["extra"].get("phase") == "onset"]
    for kind, scene in WHERE.items():
        first, last = scene_frames(scene)
        assert any(k == kind and first <= (i or -1) <= last for k, i in onsets), (kind, scene, onsets)
    assert ("geofence", "onset") in sealed, sealed
    received = events(out / "cam-events")
    assert sealed <= received, sealed - received
    alerts = [line for line in log.splitlines() if "ALERT" in line]
    for kind in ("uniform", "too_dark", "frozen", "scene_change", "geofence"):
        assert any(f"{kind} onset" in line for line in alerts), (kind, alerts)
    assert res.stdout.count("alarm") >= 1 and "alarms:" in res.stdout, res.stdout


def test_clip_end_ends_run_and_every_record_is_anchored(site: FieldSite, tmp_path: Path) -> None:
    """A file source that ends stops `run`; the last records of the clean stop are in the Merkle log."""
    clip = write_clip(tmp_path / "short.mp4", [("live", 4.0)])
    config = site.device_config(tmp_path / "dev", "cam-short", uplink=None,
                                capture={"backend": "opencv", "source": str(clip)})
    res = agent_cli("run", "--config", str(config), "--seconds", "60", timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    vault = tmp_path / "dev" / "vault"
    recs = records(vault)
    assert (vault / "log" / "leaves.bin").stat().st_size // 32 == len(recs)  # every record is logged
    check = agent_cli("verify", str(vault), "--json")
    assert check.returncode == 0, check.stdout
    import json

    report = json.loads(check.stdout)
    coverage = report["anchoring"]["coverage"]
    assert coverage and coverage[-1]["seq_to"] == recs[-1]["seq"], (coverage, len(recs))

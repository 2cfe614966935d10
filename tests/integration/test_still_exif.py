"""EXIF in stills, checked with exiftool on what `evidence-agent demo` sealed (both still paths).

The EXIF must agree with the signed record (same capture time, same fix) and be covered by the
record's media hash, i.e. it was written before sealing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.model import GpsReading, Moment, TimeQuality
from agent.signing.exif import DeviceTags, read_exif, with_exif
from agent.signing.records import parse_sidecar
from tests.support.helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None,
                                reason="exiftool not installed (apt libimage-exiftool-perl)")


def _demo(vault: Path, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "agent.device.cli", "demo", "--vault", str(vault), "--seconds", "3",
                    "--still-interval", "1", "--segment-seconds", "2", *extra],
                   cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, capture_output=True)


def _exiftool(path: Path) -> dict[str, object]:
    out = subprocess.run(["exiftool", "-json", "-n", "-G1", str(path)], capture_output=True, text=True, check=True)
    data: dict[str, object] = json.loads(out.stdout)[0]
    return data


@pytest.mark.parametrize("mode", ["video", "stills-only"])
def test_every_still_has_exif_matching_its_record(tmp_path: Path, mode: str) -> None:
    vault = tmp_path / "vault"
    _demo(vault, *(["--no-video"] if mode == "stills-only" else []))
    stills = sorted(vault.glob("items/*/*.still.jpg"))
    assert stills, "the demo sealed no still"
    for jpg in stills:
        record = parse_sidecar(jpg.with_suffix(".rec").read_bytes(), jpg.name).record
        assert record["media"]["sha256"] == hashlib.sha256(jpg.read_bytes()).hexdigest()  # EXIF is sealed
        tags = _exiftool(jpg)
        wall = record["captured"]["wall"]  # 2026-12-02T17:26:23.837786Z
        assert tags["Composite:SubSecDateTimeOriginal"] == (
            wall[:10].replace("-", ":") + " " + wall[11:26] + "+00:00"), (jpg.name, tags)
        assert tags["ExifIFD:OffsetTimeOriginal"] == "+00:00"
        assert tags["IFD0:Make"] == "evidence-agent"
        assert tags["IFD0:Model"] == record["extra"]["camera"]
        assert tags["ExifIFD:SerialNumber"] == record["device_id"] == "demo-device"
        gps = record["gps"]
        if gps["fix"] == "none":
            assert not any(k.startswith("GPS:") for k in tags), "no fix must mean no GPS IFD"
        else:
            assert abs(float(tags["Composite:GPSLatitude"]) - gps["lat"]) < 1e-6  # type: ignore[arg-type]
            assert abs(float(tags["Composite:GPSLongitude"]) - gps["lon"]) < 1e-6  # type: ignore[arg-type]
            assert abs(float(tags["GPS:GPSAltitude"]) - gps["alt_m"]) < 0.01  # type: ignore[arg-type]
            assert tags["GPS:GPSMapDatum"] == "WGS-84"
        # C2PA manifest embedded after EXIF on both paths (with and without video)
        assert "JUMBF:JUMDLabel" in tags and record["extra"]["c2pa"]["manifest"].startswith("urn:c2pa:")
    if mode == "stills-only":  # a lone copy verifies from its manifest here too
        lone = tmp_path / "photo.jpg"
        lone.write_bytes(stills[0].read_bytes())
        r = subprocess.run([sys.executable, "-m", "agent.device.cli", "verify", str(lone), "--json",
                            "--allow-untrusted"], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
        assert r.returncode == 0 and json.loads(r.stdout)["device"]["device_id"] == "demo-device", r.stdout


def test_no_fix_means_no_gps_ifd(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    _ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    m = Moment(wall_ns=1_796_232_383_837_786_123, mono_ns=1, gps=GpsReading(fix=None, status="no fix"),
               time=TimeQuality("unsynced", False))
    jpg = with_exif(bytes(buf), m, DeviceTags("dev-1", "site-1", "cam"))
    (tmp_path / "a.jpg").write_bytes(jpg)
    tags = _exiftool(tmp_path / "a.jpg")
    assert not any(k.startswith("GPS:") for k in tags)
    assert tags["Composite:SubSecDateTimeOriginal"] == "2026:12:02 17:26:23.837786+00:00"
    back = read_exif(jpg)
    assert back["gps"] is None and back["captured"] == "2026-12-02T17:26:23.837786Z" and back["serial"] == "dev-1"

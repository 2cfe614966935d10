"""Burn-in overlay and the C2PA helpers: honest GPS text and metadata, root-less chain, real manifests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.core.errors import VerificationError
from agent.core.model import Frame, GpsFix, GpsReading
from agent.signing.c2pa import C2paSigner, chain_for_c2pa, check_c2pa, gps_metadata
from agent.signing.keys import DeviceIdentity
from agent.video.overlay import Overlay, gps_text

FIX = GpsReading(GpsFix(lat=31.2304, lon=-121.4737, mode=3, fix_time="2026-11-22T09:00:00Z", alt_m=-3.5,
                        hdop=0.9, satellites=9), age_s=0.1)


def test_overlay_draws_on_a_copy_and_says_no_fix_honestly() -> None:
    img = np.zeros((120, 160, 3), np.uint8)
    frame = Frame(img, 7, 1_790_000_000_000_000_000, 1)
    out = Overlay("dev-1", "site-9").apply(frame, GpsReading(None, "no fix"))
    assert out.image.any() and not img.any() and out.index == 7
    assert "no fix" in " ".join(Overlay("d", "s").lines(frame, GpsReading(None, "no fix")))
    assert gps_text(FIX).startswith("GPS 31.230400,-121.473700 3D") and gps_text(None) == "GPS: no reading"


def test_gps_metadata_is_exif_xmp_and_empty_without_a_fix() -> None:
    meta = gps_metadata(FIX)
    assert meta["exif:GPSLatitude"] == "31,13.824000N" and meta["exif:GPSLongitude"].endswith("W")
    assert meta["exif:GPSAltitudeRef"] == 1 and meta["exif:GPSAltitude"] == "350/100"
    assert gps_metadata(GpsReading(None, "no fix")) == {} and gps_metadata(None) == {}


def test_chain_for_c2pa_leaves_out_the_root(identity: DeviceIdentity) -> None:
    pem = chain_for_c2pa(identity.chain)
    assert len(identity.chain) == 2 and pem.count("BEGIN CERTIFICATE") == 1


def test_jpeg_manifest_validates_with_only_untrusted(identity: DeviceIdentity, tmp_path: Path) -> None:
    src, dst = tmp_path / "a.jpg", tmp_path / "b.jpg"
    cv2.imwrite(str(src), np.full((48, 64, 3), 128, np.uint8))
    signer = C2paSigner(identity.sign, identity.chain)
    res = signer.sign_file(src, dst, "image/jpeg", title="still", gps=FIX, extra={"frame_index": 1})
    signer.close()
    signer.close()
    data = check_c2pa(dst)
    assert data["active_manifest"] == res.manifest_id and data["failure_codes"] == ["signingCredential.untrusted"]
    labels = [a["label"] for a in data["manifests"][res.manifest_id]["assertions"]]
    assert "c2pa.actions.v2" in labels and "c2pa.metadata" in labels
    with pytest.raises(VerificationError, match="no readable C2PA manifest"):
        check_c2pa(src)
    tampered = bytearray(dst.read_bytes())
    tampered[-200] ^= 0xFF  # inside the image data
    (tmp_path / "c.jpg").write_bytes(bytes(tampered))
    with pytest.raises(VerificationError):
        check_c2pa(tmp_path / "c.jpg")

"""C2PA Content Credentials of a still: capture time, intermediates in the chain, TSA time-stamp (c2pa Reader).

Uses a real RFC 3161 TSA (openssl ts behind HTTP) and a root -> intermediate -> device chain made at run time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import c2pa
import cv2
import numpy as np
from cryptography.hazmat.primitives import serialization

from agent.core.model import GpsFix, GpsReading
from agent.signing.c2pa import C2paSigner
from tests.support.pki import identity_with_intermediate
from tests.support.tsa_server import LocalTsa


def _jpeg(path: Path) -> Path:
    _ok, buf = cv2.imencode(".jpg", (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8))
    path.write_bytes(bytes(buf))
    return path


def _read(path: Path, trust_pem: str | None = None) -> dict[str, object]:
    settings: dict[str, object] = {}
    if trust_pem:
        settings = {"verify": {"verify_trust": True}, "trust": {"trust_anchors": trust_pem}}
    with open(path, "rb") as fh, c2pa.Reader("image/jpeg", fh, context=c2pa.Context.from_dict(settings)) as r:
        data: dict[str, object] = json.loads(r.json())
        data["crjson"] = json.loads(r.crjson())
    return data


def _codes(data: dict[str, object], kind: str) -> list[str]:
    results = data["validation_results"]["activeManifest"]  # type: ignore[index]
    return [c["code"] for c in results.get(kind, [])]  # type: ignore[union-attr]


def test_chain_with_intermediate_validates_against_the_root_only(tmp_path: Path) -> None:
    ident, root = identity_with_intermediate("dev-7")
    signer = C2paSigner(ident.sign, ident.chain)
    fix = GpsReading(GpsFix(lat=-33.8688, lon=151.2093, mode=3, fix_time="2026-12-02T08:00:00Z"))
    captured_ns = 1_796_232_383_837_786_000
    signer.sign_file(_jpeg(tmp_path / "a.jpg"), tmp_path / "b.jpg", "image/jpeg", title="still", gps=fix,
                     captured_ns=captured_ns)
    signer.close()
    data = _read(tmp_path / "b.jpg", root.public_bytes(serialization.Encoding.PEM).decode())
    # the leaf alone would not chain to the root: the intermediate travels in the manifest
    assert data["validation_state"] == "Trusted", data["validation_results"]
    assert "signingCredential.trusted" in _codes(data, "success")
    manifest = data["manifests"][data["active_manifest"]]  # type: ignore[index]
    meta = next(a["data"] for a in manifest["assertions"] if a["label"] == "c2pa.metadata")
    assert meta["exif:DateTimeOriginal"] == "2026-12-02T17:26:23.837786+00:00"
    assert meta["exif:GPSLatitude"].endswith("S") and meta["exif:GPSLongitude"].endswith("E")


def test_signature_is_time_stamped_by_the_configured_tsa(tmp_path: Path) -> None:
    ident, _root = identity_with_intermediate("dev-7")
    tsa = LocalTsa()
    try:
        signer = C2paSigner(ident.sign, ident.chain, tsa_url=tsa.url)
        t0 = time.time()
        res = signer.sign_file(_jpeg(tmp_path / "a.jpg"), tmp_path / "b.jpg", "image/jpeg", title="still", gps=None)
        assert res.timestamped and res.tsa_error is None and tsa.requests == 1
        tsa.online = False  # offline site: still signed, without the token, and it says so
        res2 = signer.sign_file(_jpeg(tmp_path / "c.jpg"), tmp_path / "d.jpg", "image/jpeg", title="s", gps=None)
        signer.close()
    finally:
        tsa.close()
    assert not res2.timestamped and res2.tsa_error
    data = _read(tmp_path / "b.jpg")
    assert "timeStamp.validated" in _codes(data, "success")
    stamp = data["crjson"]["manifests"][0]["signature"]["timeStampInfo"]  # type: ignore[index]
    assert stamp["certificateInfo"]["subject"]["CN"] == "Test TSA"
    assert abs(_epoch(stamp["timestamp"]) - t0) < 120
    assert "timeStamp.validated" not in _codes(_read(tmp_path / "d.jpg"), "success")


def _epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso).timestamp()

"""A device certificate from ``evidence-officer ca sign-csr`` (site SAN URI, three EKUs) signs C2PA credentials
that the c2pa Reader trusts under the customs CA alone."""

from __future__ import annotations

import json
from pathlib import Path

import c2pa
import cv2
import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.customs.ca.folder import CaFolder
from agent.customs.ca.profiles import device_certificate
from agent.signing.c2pa import C2paSigner
from agent.signing.keys import DeviceIdentity


def test_a_ca_issued_device_certificate_signs_trusted_c2pa(tmp_path: Path) -> None:
    folder = CaFolder(tmp_path / "ca")
    folder.init("Test Customs Evidence CA", "Test Customs", 30)
    key, ca = folder.load()
    device_key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "cam-1")]))
           .sign(device_key, hashes.SHA256()))
    cert = device_certificate(key, ca, csr, "cam-1", "site-1", "Test Customs")
    ident = DeviceIdentity(private_key=device_key, cert=cert, chain=(cert, ca))
    _ok, buf = cv2.imencode(".jpg", (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8))
    (tmp_path / "a.jpg").write_bytes(bytes(buf))
    signer = C2paSigner(ident.sign, ident.chain)
    signer.sign_file(tmp_path / "a.jpg", tmp_path / "b.jpg", "image/jpeg", title="still", gps=None,
                     captured_ns=None)
    signer.close()
    settings = {"verify": {"verify_trust": True},
                "trust": {"trust_anchors": ca.public_bytes(serialization.Encoding.PEM).decode()}}
    with open(tmp_path / "b.jpg", "rb") as fh, \
            c2pa.Reader("image/jpeg", fh, context=c2pa.Context.from_dict(settings)) as reader:
        assert json.loads(reader.json())["validation_state"] == "Trusted"

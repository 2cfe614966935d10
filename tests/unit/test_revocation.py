"""The CRL reader (agent/signing/revocation.py) on CRLs made by the customs CA folder (agent/customs/ca)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.customs.ca.crl import publish, revoke
from agent.customs.ca.folder import CaFolder
from agent.customs.ca.profiles import device_certificate
from agent.signing.revocation import CrlFile, load_crls, parse_crls_unchecked


def _ca(tmp_path: Path, name: str = "ca") -> CaFolder:
    folder = CaFolder(tmp_path / name)
    folder.init(f"{name} CA", "Test Customs", 30)
    return folder


def _device(folder: CaFolder, device: str) -> x509.Certificate:
    key, ca = folder.load()
    dkey = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, device)]))
           .sign(dkey, hashes.SHA256()))
    cert = device_certificate(key, ca, csr, device, "site-1", "Test Customs")
    folder.keep(cert)
    folder.log.append("issue", folder.load()[0], role="device", identity=device, serial=f"{cert.serial_number:X}")
    return cert


def test_a_revoked_serial_is_found_with_its_time_and_reason(tmp_path: Path) -> None:
    folder = _ca(tmp_path)
    stolen, honest = _device(folder, "cam-1"), _device(folder, "cam-2")
    since = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    revoke(folder, "cam-1", "keyCompromise", since)
    path, n = publish(folder)
    revs = load_crls(path, [folder.load()[1]])
    assert n == 1 and revs.revoked(honest) is None
    entry = revs.revoked(stolen)
    assert entry is not None and entry.reason == "key_compromise" and entry.since == since  # invalidity date first


def test_a_crl_from_another_ca_or_forged_is_refused(tmp_path: Path) -> None:
    ours, theirs = _ca(tmp_path, "ours"), _ca(tmp_path, "theirs")
    path, _ = publish(theirs)
    with pytest.raises(VerificationError, match="not signed by any CA given"):
        load_crls(path, [ours.load()[1]])
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    with pytest.raises(VerificationError, match=r"junk\.pem"):
        load_crls(junk, [ours.load()[1]])
    with pytest.raises(VerificationError, match="no CA given"):
        load_crls(path, [])
    # same issuer name, another key: a forger who copied the CA's subject
    key = ec.generate_private_key(ec.SECP256R1())
    ca = ours.load()[1]
    now = dt.datetime.now(dt.UTC)
    forged = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now)
              .next_update(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    fpath = tmp_path / "forged.pem"
    fpath.write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(VerificationError, match="not signed"):
        load_crls(fpath, [ca])


def test_a_crl_file_is_reread_on_change_and_a_broken_one_never_unrevokes(tmp_path: Path) -> None:
    folder = _ca(tmp_path)
    cert = _device(folder, "cam-1")
    path, _ = publish(folder)
    crl = CrlFile(path, [folder.load()[1]])
    assert crl.revoked(cert) is None
    revoke(folder, f"{cert.serial_number:X}", "superseded")
    publish(folder)
    assert crl.revoked(cert) is not None  # the file changed: re-read
    path.write_bytes(b"garbage")
    os.utime(path, ns=(1, 1))
    assert crl.revoked(cert) is not None  # broken file: the last revocations stand


def test_a_stale_crl_is_still_honoured(tmp_path: Path) -> None:
    folder = _ca(tmp_path)
    cert = _device(folder, "cam-1")
    revoke(folder, "cam-1", "key_compromise")
    path, _ = publish(folder, days=0)
    revs = load_crls(path, [folder.load()[1]])
    assert revs.stale(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)) and revs.revoked(cert) is not None


def test_unchecked_parsing_is_for_trusted_folders_only_and_rejects_junk(tmp_path: Path) -> None:
    folder = _ca(tmp_path)
    path, _ = publish(folder)
    assert len(parse_crls_unchecked(path.read_bytes())) == 0
    with pytest.raises(VerificationError):
        parse_crls_unchecked(b"junk")

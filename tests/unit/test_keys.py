from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core.errors import SigningError
from agent.signing.keys import (
    CA_FILE,
    CERT_FILE,
    CSR_FILE,
    KEY_FILE,
    init_identity,
    install_certificate,
    issue_leaf,
    key_id_of,
    load_identity,
    make_ca,
    verify_with,
)


def test_init_creates_private_key_0600_and_ca_issued_leaf(key_dir: Path) -> None:
    assert stat.S_IMODE((key_dir / KEY_FILE).stat().st_mode) == 0o600
    ident = load_identity(key_dir)
    leaf = ident.cert
    ca = x509.load_pem_x509_certificate((key_dir / CA_FILE).read_bytes())
    leaf.verify_directly_issued_by(ca)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test-device"
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Test Enterprise"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in list(eku)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ident.key_id == key_id_of(leaf.public_key())  # type: ignore[arg-type]
    assert len(ident.key_id) == 64


def test_sign_and_verify_roundtrip(key_dir: Path) -> None:
    ident = load_identity(key_dir)
    sig = ident.sign(b"hello")
    verify_with(ident.cert.public_key(), sig, b"hello")  # type: ignore[arg-type]
    with pytest.raises(SigningError):
        verify_with(ident.cert.public_key(), sig, b"hellO")  # type: ignore[arg-type]


def test_init_refuses_to_overwrite(key_dir: Path) -> None:
    with pytest.raises(SigningError, match="already exists"):
        init_identity(key_dir, "test-device", "Test Enterprise")


def test_csr_flow_and_install(tmp_path: Path) -> None:
    d = tmp_path / "k"
    init_identity(d, "cam-7", "Customs Test", csr=True)
    csr = x509.load_pem_x509_csr((d / CSR_FILE).read_bytes())
    assert csr.is_signature_valid
    with pytest.raises(SigningError, match="missing"):
        load_identity(d)
    ca_key, ca_cert = make_ca("Customs CA", "Customs")
    leaf = issue_leaf(ca_key, ca_cert, csr.subject, csr.public_key())  # type: ignore[arg-type]
    from cryptography.hazmat.primitives.serialization import Encoding

    install_certificate(d, leaf.public_bytes(Encoding.PEM), ca_cert.public_bytes(Encoding.PEM))
    assert load_identity(d).cert == leaf
    _other_key, other_ca = make_ca("Other", "Other")  # a cert for another key is refused
    with pytest.raises(SigningError, match="not for this device"):
        install_certificate(d, other_ca.public_bytes(Encoding.PEM), other_ca.public_bytes(Encoding.PEM))


def test_missing_or_garbage_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="keys init"):
        load_identity(tmp_path)
    (tmp_path / KEY_FILE).write_text("garbage")
    (tmp_path / CERT_FILE).write_text("garbage")
    with pytest.raises(SigningError, match="not a readable"):
        load_identity(tmp_path)


def test_device_leaf_serves_c2pa_and_mutual_tls(key_dir: Path) -> None:
    import subprocess

    eku = list(load_identity(key_dir).cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36") in eku
    res = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(key_dir / CA_FILE),
                          str(key_dir / CERT_FILE)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr

"""The one trust module: chain building by cryptography's X.509 verifier, identity = subject CN."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.signing.keys import DEVICE_EKUS, issue_leaf, make_ca, sign_with
from agent.signing.trust import device_id_of, verify_chain, verify_key_signature, verify_signature

ORG = "Test Customs"


def _subject(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, ORG)])


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return make_ca("Test Device CA", ORG)


def _device(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], cn: str
            ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, issue_leaf(ca[0], ca[1], _subject(cn), key.public_key())


def test_a_device_chain_to_the_supplied_ca_is_trusted(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
                                                      ) -> None:
    _, leaf = _device(ca, "cam-1")
    for chain in ([leaf, ca[1]], [leaf]):
        result = verify_chain(chain, [ca[1]], device="cam-1")
        assert result.trusted and result.device_id == "cam-1" and "Test Device CA" in result.issuer


def test_identity_is_the_subject_cn(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    _, leaf = _device(ca, "cam-1")
    assert device_id_of(leaf) == "cam-1"
    with pytest.raises(VerificationError, match="'cam-1', not 'cam-2'"):
        verify_chain([leaf, ca[1]], [ca[1]], device="cam-2")


def test_an_end_entity_cannot_issue_a_device_certificate(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    """The hole the old hand-written pairwise check had: a device leaf 'issuing' another device."""
    key, leaf = _device(ca, "cam-1")
    forged = issue_leaf(key, leaf, _subject("cam-2"), ec.generate_private_key(ec.SECP256R1()).public_key(),
                        eku=DEVICE_EKUS)
    leaf.verify_directly_issued_by(ca[1])  # each link is a valid signature...
    forged.verify_directly_issued_by(leaf)
    with pytest.raises(VerificationError, match="cA must be asserted"):  # ...but a leaf is no CA
        verify_chain([forged, leaf, ca[1]], [ca[1]], device="cam-2")


def test_without_anchors_the_chain_is_intact_but_not_trusted(
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    _, leaf = _device(ca, "cam-1")
    result = verify_chain([leaf, ca[1]], [], device="cam-1")
    assert not result.trusted
    with pytest.raises(VerificationError, match="self-signed"):
        verify_chain([leaf], [], device="cam-1")
    other = make_ca("Other CA", ORG)[1]
    with pytest.raises(VerificationError, match="trusted CA"):
        verify_chain([leaf, ca[1]], [other], device="cam-1")


def test_time_outside_validity_is_refused(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    _, leaf = _device(ca, "cam-1")
    with pytest.raises(VerificationError, match="outside"):
        verify_chain([leaf, ca[1]], [ca[1]], at=dt.datetime(2001, 1, 1, tzinfo=dt.UTC))


def test_signatures(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, leaf = _device(ca, "cam-1")
    sig = sign_with(key, b"data")
    verify_signature(leaf, sig, b"data")
    verify_key_signature(key.public_key(), sig, b"data")
    with pytest.raises(VerificationError, match="invalid"):
        verify_signature(leaf, sig, b"datA")
    with pytest.raises(VerificationError, match="P-256"):
        verify_key_signature(object(), sig, b"data")

"""What the customs CA puts into a device and an officer certificate.

Both: identity = the one subject CN (the MQTT user name through ``use_identity_as_username``, the
record's ``device_id`` or the command's ``officer``); ECDSA P-256 keys; key usages digitalSignature +
nonRepudiation; extended key usages emailProtection (C2PA signers), documentSigning (evidence, reports)
and clientAuth (mutual TLS to the broker).

Device: the site is bound into the certificate as a subjectAltName URI ``urn:evidence:site:<SITE>``
(``site_of`` reads it), so the broker ACL and the ingest can hold a device to its registered site.
Officer: the legal name as the X.520 ``name`` attribute (2.5.4.41), the badge number as ``serialNumber``
(2.5.4.5) — both in the subject, where a report reader's PDF tool shows them.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.signing.keys import DEVICE_EKUS, DOCUMENT_SIGNING
from agent.wire.topics import check_segment

SITE_URI_PREFIX = "urn:evidence:site:"
LEGAL_NAME_OID = x509.ObjectIdentifier("2.5.4.41")  # X.520 name
OFFICER_EKUS: tuple[x509.ObjectIdentifier, ...] = (
    ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING)
DEVICE_UNIT, OFFICER_UNIT = "evidence-camera", "evidence-officer"


def site_of(cert: x509.Certificate) -> str | None:
    """The site a device certificate is bound to (its ``urn:evidence:site:`` SAN URI), or None."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    sites = [u[len(SITE_URI_PREFIX):] for u in san.get_values_for_type(x509.UniformResourceIdentifier)
             if u.startswith(SITE_URI_PREFIX)]
    return sites[0] if len(sites) == 1 else None


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, subject: x509.Name,
          public_key: ec.EllipticCurvePublicKey, days: int, ekus: tuple[x509.ObjectIdentifier, ...],
          san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)  # nested in the CA's validity
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject).public_key(public_key)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                      crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(ca_key, hashes.SHA256())


def p256(public_key: object, what: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != "secp256r1":
        raise ValueError(f"{what}: the key is not ECDSA P-256")
    return public_key


def device_certificate(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                       csr: x509.CertificateSigningRequest, device: str, site: str, organization: str,
                       days: int = 825) -> x509.Certificate:
    """A device certificate for a checked CSR: CN = device, O from the CSR (the enterprise), site SAN."""
    check_segment(device, "device id")
    check_segment(site, "site id")
    orgs = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    org = str(orgs[0].value) if orgs else organization
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVICE_UNIT)])
    return _leaf(ca_key, ca_cert, subject, p256(csr.public_key(), "CSR"), days, DEVICE_EKUS,
                 [x509.UniformResourceIdentifier(SITE_URI_PREFIX + site)])


def officer_certificate(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                        public_key: ec.EllipticCurvePublicKey, officer: str, legal_name: str, badge: str,
                        organization: str, days: int = 365) -> x509.Certificate:
    """An officer certificate: CN = officer id, legal name and badge in the subject."""
    check_segment(officer, "officer id")
    for what, value in (("legal name", legal_name), ("badge", badge)):
        if not value.strip() or len(value) > 64 or not value.isprintable():
            raise ValueError(f"{what} must be 1-64 printable characters")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, officer),
                         x509.NameAttribute(LEGAL_NAME_OID, legal_name),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, badge),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, OFFICER_UNIT)])
    return _leaf(ca_key, ca_cert, subject, public_key, days, OFFICER_EKUS)

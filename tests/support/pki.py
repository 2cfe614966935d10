"""A customs-style device PKI for tests: root -> intermediate ("devices CA") -> device leaf, made at run time."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.signing.keys import DeviceIdentity, issue_leaf, make_ca


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Test Customs")])


def identity_with_intermediate(device_id: str) -> tuple[DeviceIdentity, x509.Certificate]:
    """A device identity whose chain is leaf, intermediate, root; returns it and the root."""
    root_key, root = make_ca("Test Customs Root", "Test Customs")
    inter_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    inter = (x509.CertificateBuilder().subject_name(_name("Test Customs Devices CA")).issuer_name(root.subject)
             .public_key(inter_key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
             .sign(root_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_leaf(inter_key, inter, _name(device_id), leaf_key.public_key())
    return DeviceIdentity(private_key=leaf_key, cert=leaf, chain=(leaf, inter, root)), root

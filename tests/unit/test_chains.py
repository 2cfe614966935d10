"""A run's chain cache answers exactly as a full chain check would, and builds each chain once."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.signing import chains as chains_mod
from agent.signing.chains import ChainCache
from agent.signing.keys import issue_leaf, make_ca
from agent.signing.trust import verify_chain

NOW = dt.datetime.now(dt.UTC)
DEVICE = "cam-7"


def _ca(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey,
        days: int, path_length: int | None) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(hours=1)).not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
            .sign(signer, hashes.SHA256()))


def identity_with_intermediate(device: str) -> tuple[tuple[bytes, ...], x509.Certificate]:
    """(leaf, intermediate, root) as DER, and the root: the intermediate expires after 30 days, the leaf later."""
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _ca("Test Root", root_key, None, root_key, 3650, None)
    inter = _ca("Test Devices CA", inter_key, root.subject, root_key, 30, 0)
    leaf = issue_leaf(inter_key, inter, x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, device)]),
                      leaf_key.public_key())
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in (leaf, inter, root)), root


def _outcome(call: object) -> tuple[str, object]:
    try:
        res = call()  # type: ignore[operator]
    except VerificationError as exc:
        return "error", str(exc)
    return "ok", (res.device_id, res.trusted, res.issuer, tuple(c.serial_number for c in res.chain))


@pytest.fixture(scope="module")
def pki() -> tuple[tuple[bytes, ...], tuple[x509.Certificate, ...], x509.Certificate]:
    x5c, root = identity_with_intermediate(DEVICE)
    return x5c, ChainCache([]).certificates(x5c), root


@pytest.mark.parametrize("anchored", [True, False])
@pytest.mark.parametrize(("days", "device"), [(0, DEVICE), (10, DEVICE), (29, DEVICE), (31, DEVICE), (400, DEVICE),
                                              (-1, DEVICE), (5, "cam-8"), (31, "cam-8")])
def test_the_cached_answer_is_the_full_check_answer(pki: tuple, anchored: bool, days: int, device: str) -> None:
    x5c, certs, root = pki
    anchors = [root] if anchored else []  # without: checked against the chain's own self-signed top
    cache = ChainCache(anchors)
    cache.verify(x5c, certs, at=NOW, device=DEVICE)  # warm: the first record, now
    when = NOW + dt.timedelta(days=days)
    assert _outcome(lambda: cache.verify(x5c, certs, at=when, device=device)) == \
        _outcome(lambda: verify_chain(certs, anchors, at=when, device=device))


def test_one_chain_is_built_once_for_many_records(pki: tuple) -> None:
    x5c, _certs, root = pki
    cache = ChainCache([root])
    for minute in range(500):
        assert cache.verify(x5c, cache.certificates(x5c), at=NOW + dt.timedelta(minutes=minute), device=DEVICE).trusted
    assert cache.built == 1
    assert cache.certificates(x5c)[0] is cache.certificates(x5c)[0]  # parsed once, shared


def test_a_record_outside_the_path_validity_is_checked_in_full_and_refused(pki: tuple) -> None:
    x5c, certs, root = pki
    cache = ChainCache([root])
    cache.verify(x5c, certs, at=NOW, device=DEVICE)
    with pytest.raises(VerificationError, match="does not lead to a trusted CA"):
        cache.verify(x5c, certs, at=NOW + dt.timedelta(days=60), device=DEVICE)  # intermediate expired
    assert cache.built == 2


def test_a_foreign_anchor_is_refused_every_time(pki: tuple) -> None:
    x5c, certs, _root = pki
    cache = ChainCache([make_ca("Other CA", "Elsewhere")[1]])
    for _ in range(3):
        with pytest.raises(VerificationError, match="does not lead to a trusted CA"):
            cache.verify(x5c, certs, at=NOW, device=DEVICE)


def test_the_caches_stay_bounded_on_hostile_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chains_mod, "MAX_ENTRIES", 3)
    cache = ChainCache([])
    for i in range(6):
        x5c, _root = identity_with_intermediate(f"cam-{i}")
        certs = cache.certificates(x5c)
        cache.signer(x5c[0], certs[0])
        assert cache.verify(x5c, certs, at=NOW, device=f"cam-{i}").device_id == f"cam-{i}"
    assert len(cache._certs) <= 3 and len(cache._signers) <= 3 and len(cache._chains) <= 3


def test_reuse_by_integer_time_answers_only_inside_the_window_and_as_the_full_check(pki: tuple) -> None:
    x5c, certs, root = pki
    cache = ChainCache([root])
    assert cache.reuse(x5c, int(NOW.timestamp() * 1e6), DEVICE) is None  # nothing verified yet
    cache.verify(x5c, certs, at=NOW, device=DEVICE)
    inter_expiry = certs[1].not_valid_after_utc  # the earliest notAfter on the path
    start = max(c.not_valid_before_utc for c in certs)

    def us(t: dt.datetime) -> int:
        return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)

    for when in (NOW, start, inter_expiry, start + dt.timedelta(microseconds=1),
                 inter_expiry - dt.timedelta(microseconds=1), inter_expiry + dt.timedelta(microseconds=1),
                 start - dt.timedelta(microseconds=1), NOW + dt.timedelta(days=60)):
        got = cache.reuse(x5c, us(when), DEVICE)
        if got is not None:  # when it answers, it answers as a full check at that time would
            assert start < when < inter_expiry
            full = _outcome(lambda w=when: verify_chain(certs, [root], at=w, device=DEVICE))
            assert _outcome(lambda g=got: g) == full
        else:
            assert not start < when < inter_expiry
    assert cache.reuse(x5c, us(NOW), "cam-8") is None  # another device: the full check names the mismatch
    assert cache.built == 1

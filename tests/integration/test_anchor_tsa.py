"""RFC 3161 anchor against a real `openssl ts -reply` TSA; tokens also pass `openssl ts -verify`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.anchor.note import Checkpoint, NoteSigner, sign_note
from agent.anchor.tsa import TsaAnchor, load_pem_certs, verify_token
from agent.core.errors import UplinkError, VerificationError
from tests.support.tsa_server import LocalTsa

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def tsa() -> Iterator[LocalTsa]:
    t = LocalTsa()
    yield t
    t.close()


def _note() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return sign_note(Checkpoint("evidence.example/dev1", 5, bytes(32)).body(),
                     NoteSigner.from_private_key("evidence.example/dev1", key)).encode()


def test_token_verifies_with_rfc3161_client_and_openssl(tsa: LocalTsa, tmp_path: Path) -> None:
    note = _note()
    roots = load_pem_certs(tsa.ca_file)
    receipt = TsaAnchor(tsa.url, trusted=roots).submit(note, Checkpoint("evidence.example/dev1", 5, bytes(32)))
    import base64

    tsr = base64.b64decode(receipt.data["token"])
    tok = verify_token(tsr, note, roots)
    assert tok.gen_time.timestamp() * 1e9 == pytest.approx(receipt.time_ns, abs=1e6)
    (tmp_path / "t.tsr").write_bytes(tsr)
    (tmp_path / "note").write_bytes(note)
    out = subprocess.run(["openssl", "ts", "-verify", "-in", str(tmp_path / "t.tsr"), "-data", str(tmp_path / "note"),
                          "-CAfile", str(tsa.ca_file), "-untrusted", str(tsa.cert_file)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "Verification: OK" in out.stdout, out.stderr
    (tmp_path / "note").write_bytes(note + b"x")
    bad = subprocess.run(["openssl", "ts", "-verify", "-in", str(tmp_path / "t.tsr"), "-data", str(tmp_path / "note"),
                          "-CAfile", str(tsa.ca_file), "-untrusted", str(tsa.cert_file)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode != 0


def test_token_rejected_for_other_data_or_untrusted_root(tsa: LocalTsa, tmp_path: Path) -> None:
    note = _note()
    tok = TsaAnchor(tsa.url).stamp(note)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_token(tok.tsr, note + b"!", load_pem_certs(tsa.ca_file))
    other = LocalTsa(tmp_path / "other")
    try:
        with pytest.raises(VerificationError):
            verify_token(tok.tsr, note, load_pem_certs(other.ca_file))
    finally:
        other.close()
    with pytest.raises(VerificationError, match="unreadable"):
        verify_token(b"garbage", note, load_pem_certs(tsa.ca_file))


def test_tsa_certificate_without_critical_eku_yields_no_token(tmp_path: Path) -> None:
    """openssl refuses to sign with such a certificate, and the client reports the refusal as an uplink error.

    (rfc3161-client's verifier independently rejects tokens whose signer EKU is not critical.)
    """
    lax = LocalTsa(tmp_path / "lax", critical_eku=False)
    try:
        with pytest.raises(UplinkError, match="HTTP 400"):
            TsaAnchor(lax.url).stamp(_note())
    finally:
        lax.close()


def test_offline_tsa_raises_uplink_error(tsa: LocalTsa) -> None:
    tsa.online = False
    try:
        with pytest.raises(UplinkError):
            TsaAnchor(tsa.url, timeout_s=2).stamp(b"x\n")
    finally:
        tsa.online = True
    with pytest.raises(UplinkError):
        TsaAnchor("http://127.0.0.1:9/none", timeout_s=1).stamp(b"x\n")

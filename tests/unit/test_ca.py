"""The customs CA folder (agent/customs/ca): profiles, the hash-chained issuance log, revoke targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.core.errors import ConfigError
from agent.customs.ca.crl import reason_of, revoke, targets
from agent.customs.ca.folder import CaFolder
from agent.customs.ca.profiles import LEGAL_NAME_OID, officer_certificate, site_of
from agent.signing.keys import DOCUMENT_SIGNING
from agent.signing.trust import verify_chain
from tests.support.fleet import officer_cli


def _csr(tmp_path: Path, cn: str, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256()))
    path = tmp_path / f"{cn}.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def test_ca_cli_issues_a_device_that_chains_and_refuses_mistakes(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    assert officer_cli("ca", "init", "--dir", str(ca_dir), "--org", "Test Customs").returncode == 0
    assert oct((ca_dir / "ca.key").stat().st_mode & 0o777) == "0o600"
    again = officer_cli("ca", "init", "--dir", str(ca_dir))
    assert again.returncode == 2 and "already" in again.stderr
    out = tmp_path / "cam-1.pem"
    ok = officer_cli("ca", "sign-csr", str(_csr(tmp_path, "cam-1")), "--device", "cam-1", "--site", "site-9",
                     "--out", str(out), "--dir", str(ca_dir))
    assert ok.returncode == 0, ok.stderr
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    assert verify_chain([cert, ca], [ca], device="cam-1").trusted and site_of(cert) == "site-9"
    for args, said in ((["--device", "cam-2", "--site", "s"], "not device"),  # the wrong device's request
                       (["--device", "cam-1", "--site", "a/b"], "site"),
                       (["--device", "cam-1", "--site", "s", "--dir", str(tmp_path / "none")], "no CA key")):
        bad = officer_cli("ca", "sign-csr", str(_csr(tmp_path, "cam-1")), *args,
                          *([] if "--dir" in args else ["--dir", str(ca_dir)]))
        assert bad.returncode == 2 and said in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    log = [json.loads(line) for line in (ca_dir / "issued.jsonl").read_text().splitlines()]
    assert [e["op"] for e in log] == ["init", "issue"]
    assert (ca_dir / "issued" / f"{cert.serial_number:X}.pem").exists()


def test_an_edited_log_line_breaks_the_chain(tmp_path: Path) -> None:
    folder = CaFolder(tmp_path / "ca")
    folder.init("CA", "Test Customs", 30)
    folder.log.append("issue", folder.load()[0], role="device", identity="cam-1", serial="AB")
    folder.log.append("revoke", folder.load()[0], serial="AB", identity="cam-1", reason="key_compromise")
    lines = folder.log.path.read_text().splitlines()
    lines[2] = lines[2].replace("key_compromise", "superseded")
    folder.log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"issued.jsonl:3: not signed by this CA"):
        list(folder.log.entries())
    del lines[1]  # a removed issuance
    folder.log.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="breaks the hash chain"):
        folder.log.append("crl", folder.load()[0], number=1)


def test_revoke_targets_and_reasons(tmp_path: Path) -> None:
    folder = CaFolder(tmp_path / "ca")
    folder.init("CA", "Test Customs", 30)
    folder.log.append("issue", folder.load()[0], role="device", identity="cam-1", serial="AB")
    folder.log.append("issue", folder.load()[0], role="device", identity="cam-1", serial="CD")  # renewed
    assert targets(folder, "cam-1") == [("AB", "cam-1"), ("CD", "cam-1")]
    assert targets(folder, "0xab") == [("AB", "cam-1")]
    with pytest.raises(ConfigError, match="no certificate issued"):
        targets(folder, "cam-unknown")
    assert len(revoke(folder, "cam-1", "key-compromise")) == 2
    assert revoke(folder, "cam-1", "keyCompromise") == []  # already revoked
    assert reason_of("cessationOfOperation") == x509.ReasonFlags.cessation_of_operation
    with pytest.raises(ConfigError, match="one of"):
        reason_of("because")


def test_officer_certificate_profile(tmp_path: Path) -> None:
    folder = CaFolder(tmp_path / "ca")
    folder.init("CA", "Test Customs", 30)
    key, ca = folder.load()
    okey = ec.generate_private_key(ec.SECP256R1())
    cert = officer_certificate(key, ca, okey.public_key(), "officer-eve", "Eve Example", "B-17", "Customs")
    assert cert.subject.get_attributes_for_oid(LEGAL_NAME_OID)[0].value == "Eve Example"
    assert cert.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value == "B-17"
    ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ekus == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING}
    with pytest.raises(ValueError, match="legal name"):
        officer_certificate(key, ca, okey.public_key(), "officer-eve", "", "B-17", "Customs")


def test_sign_csr_serves_as_the_provision_enroll_command(tmp_path: Path) -> None:
    import shlex
    import sys

    from agent.hostsetup.identity import run_enroll
    from tests.support.fleet import ENV

    ca_dir = tmp_path / "ca"
    assert officer_cli("ca", "init", "--dir", str(ca_dir)).returncode == 0
    cmd = (f"env PYTHONPATH={shlex.quote(ENV['PYTHONPATH'])} {shlex.quote(sys.executable)} -m agent.customs.cli "
           f"ca sign-csr --dir {shlex.quote(str(ca_dir))} --device cam-7 --site site-2 --out -")
    cert_pem, chain_pem = run_enroll(cmd, _csr(tmp_path, "cam-7"))
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert site_of(cert) == "site-2" and chain_pem == (ca_dir / "ca.pem").read_bytes()


def test_broker_setup_names_the_crl_or_refuses_a_missing_one(tmp_path: Path) -> None:
    missing = officer_cli("broker-setup", str(tmp_path / "b"), "--crl", str(tmp_path / "none.pem"))
    assert missing.returncode == 2 and "none.pem" in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "b").exists()  # nothing written before the check
    assert officer_cli("ca", "init", "--dir", str(tmp_path / "b" / "ca")).returncode == 0
    assert officer_cli("ca", "crl", "--dir", str(tmp_path / "b" / "ca")).returncode == 0
    ok = officer_cli("broker-setup", str(tmp_path / "b"), "--crl", str(tmp_path / "b" / "ca" / "crl.pem"))
    assert ok.returncode == 0, ok.stderr
    conf = (tmp_path / "b" / "mosquitto.conf").read_text()
    assert f"crlfile {tmp_path / 'b' / 'ca' / 'crl.pem'}" in conf.splitlines()

"""Provisioning against a temporary root: key once, CSR, issued certificate, config, marker; re-runs change nothing."""

from __future__ import annotations

import argparse
import json
import stat
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import ConfigError, SigningError
from agent.device.config import load_config
from agent.hostsetup import provision
from agent.signing import keys

PEM = serialization.Encoding.PEM


def run(capsys: pytest.CaptureFixture[str], root: Path, *extra: str, ca: Path | None = None) -> str:
    parser = argparse.ArgumentParser()
    provision.register(parser.add_subparsers())
    args = parser.parse_args(["provision", "--site", "site-1", "--broker", "mqtts://broker.example:8883",
                              "--ca", str(ca or root.parent / "broker-ca.pem"), "--device-id", "cam-7",
                              "--root", str(root), *extra])
    assert args.func(args) == 0
    return capsys.readouterr().out


@pytest.fixture
def customs_ca(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key, cert = keys.make_ca("Customs Device CA", "Customs")
    (tmp_path / "broker-ca.pem").write_bytes(cert.public_bytes(PEM))
    (tmp_path / "ca.key").write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return key, cert


def issue(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], csr_path: Path, out: Path) -> tuple[Path, Path]:
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    leaf = keys.issue_leaf(ca[0], ca[1], csr.subject, csr.public_key())  # type: ignore[arg-type]
    cert, chain = out / "issued.pem", out / "chain.pem"
    cert.write_bytes(leaf.public_bytes(PEM))
    chain.write_bytes(ca[1].public_bytes(PEM))
    return cert, chain


def test_first_run_makes_key_csr_config_and_marker_then_changes_nothing(
        tmp_path: Path, customs_ca: object, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    out = run(capsys, root)
    key_dir = root / "var/lib/evidence-agent/keys"
    assert stat.S_IMODE((key_dir / "device.key").stat().st_mode) == 0o600
    csr = x509.load_pem_x509_csr((key_dir / "device.csr").read_bytes())
    assert csr.is_signature_valid and csr.subject.rfc4514_string() == \
        "OU=evidence-camera,O=Evidence Agent Operator,CN=cam-7"
    assert "pending" in out and "certificate pending" in out
    assert "not enabled until the device certificate is installed" in out
    cfg = load_config(root / "etc/evidence-agent/agent.toml")  # what check-config / ExecStartPre= run
    assert (cfg.device.id, cfg.device.site_id) == ("cam-7", "site-1")
    assert cfg.uplink is not None and cfg.uplink.enabled and cfg.uplink.mqtt.tls is not None
    assert cfg.uplink.mqtt.tls.key_file == Path("/var/lib/evidence-agent/keys/device.key")  # the device's view
    assert cfg.identity.key_dir == Path("/var/lib/evidence-agent/keys")
    assert (cfg.capture.backend, cfg.gps.source) == ("picamera2", "gpsd")
    assert (root / "etc/evidence-agent/broker-ca.pem").read_bytes() == (tmp_path / "broker-ca.pem").read_bytes()
    marker = json.loads((root / "var/lib/evidence-agent/provisioned").read_text())
    assert marker["certificate"] == "pending"

    key_before = (key_dir / "device.key").read_bytes()
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    again = run(capsys, root)
    assert "nothing changed: this device is already provisioned" in again
    assert "created" not in again and "updated" not in again
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot
    assert (key_dir / "device.key").read_bytes() == key_before


def test_installing_the_issued_certificate_completes_provisioning(
        tmp_path: Path, customs_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    run(capsys, root)
    key_dir = root / "var/lib/evidence-agent/keys"
    cert, chain = issue(customs_ca, key_dir / "device.csr", tmp_path)
    out = run(capsys, root, "--cert", str(cert), "--chain", str(chain))
    assert "installed" in out and "would run  systemctl enable evidence-agent.service" in out
    ident = keys.load_identity(key_dir)
    assert ident.cert.issuer == customs_ca[1].subject and ident.chain[1] == customs_ca[1]
    assert json.loads((root / "var/lib/evidence-agent/provisioned").read_text())["certificate"] == "installed"
    assert "nothing changed" in run(capsys, root, "--cert", str(cert), "--chain", str(chain))
    assert "nothing changed" in run(capsys, root)  # a later plain re-run keeps the certificate


def test_a_certificate_for_another_key_is_refused(
        tmp_path: Path, customs_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    run(capsys, root)
    other = ec.generate_private_key(ec.SECP256R1())
    leaf = keys.issue_leaf(customs_ca[0], customs_ca[1], x509.Name.from_rfc4514_string("CN=cam-7"),
                           other.public_key())
    (tmp_path / "wrong.pem").write_bytes(leaf.public_bytes(PEM))
    (tmp_path / "chain.pem").write_bytes(customs_ca[1].public_bytes(PEM))
    with pytest.raises(SigningError, match="not for this device's key"):
        run(capsys, root, "--cert", str(tmp_path / "wrong.pem"), "--chain", str(tmp_path / "chain.pem"))
    assert not (root / "var/lib/evidence-agent/keys/device.pem").exists()


def test_enrollment_command_gets_the_csr_and_returns_certificate_and_chain(
        tmp_path: Path, customs_ca: object, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "enroll.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from pathlib import Path\nfrom cryptography import x509\n"
        "from cryptography.hazmat.primitives import serialization\nfrom agent.signing.keys import issue_leaf\n"
        f"d = Path({str(tmp_path)!r})\n"
        "key = serialization.load_pem_private_key((d / 'ca.key').read_bytes(), None)\n"
        "ca = x509.load_pem_x509_certificate((d / 'broker-ca.pem').read_bytes())\n"
        "csr = x509.load_pem_x509_csr(Path(sys.argv[1]).read_bytes())\n"
        "leaf = issue_leaf(key, ca, csr.subject, csr.public_key())\n"
        "enc = serialization.Encoding.PEM\n"
        "sys.stdout.buffer.write(leaf.public_bytes(enc) + ca.public_bytes(enc))\n")
    root = tmp_path / "root"
    out = run(capsys, root, "--enroll-cmd", f"{sys.executable} {script}")
    assert "installed" in out and "pending" not in out
    assert keys.load_identity(root / "var/lib/evidence-agent/keys").cert.subject.rfc4514_string().endswith("CN=cam-7")
    assert "nothing changed" in run(capsys, root, "--enroll-cmd", "false")  # not run again once installed


def test_failing_enrollment_says_why(tmp_path: Path, customs_ca: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SigningError, match="no PEM certificates in the output"):
        run(capsys, tmp_path / "root", "--enroll-cmd", "true")
    with pytest.raises(SigningError, match="exited with 1"):
        run(capsys, tmp_path / "root", "--enroll-cmd", "false")


def test_dev_ca_self_issues(tmp_path: Path, customs_ca: object, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    out = run(capsys, root, "--dev-ca", "--camera", "synthetic", "--gps", "simulated")
    ident = keys.load_identity(root / "var/lib/evidence-agent/keys")
    assert "Development CA" in ident.cert.issuer.rfc4514_string() and "pending" not in out
    cfg = load_config(root / "etc/evidence-agent/agent.toml")
    assert (cfg.capture.backend, cfg.gps.source) == ("synthetic", "simulated")


def test_hand_edits_survive_and_a_changed_broker_is_backed_up(
        tmp_path: Path, customs_ca: object, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    run(capsys, root)
    path = root / "etc/evidence-agent/agent.toml"
    path.write_text(path.read_text() + "\n[time]\nrefresh_s = 5.0\n")
    assert "nothing changed" in run(capsys, root)  # the technician's setting is not a difference to undo
    parser = argparse.ArgumentParser()
    provision.register(parser.add_subparsers())
    args = parser.parse_args(["provision", "--site", "site-1", "--broker", "mqtts://broker2.example:8883", "--ca",
                              str(tmp_path / "broker-ca.pem"), "--device-id", "cam-7", "--root", str(root)])
    args.func(args)
    out = capsys.readouterr().out
    assert "updated" in out and "previous saved as agent.toml.bak-" in out
    data = tomllib.loads(path.read_text())
    assert data["uplink"]["mqtt"]["broker"] == "mqtts://broker2.example:8883" and data["time"]["refresh_s"] == 5.0
    assert len(list(path.parent.glob("agent.toml.bak-*"))) == 1


@pytest.mark.parametrize(("extra", "message"), [
    (["--broker", "mqtt://broker.example:1883"], "over TLS"),
    (["--site", "bad site!"], "--site"),
    (["--cert", "x.pem"], "--cert and --chain go together"),
    (["--dev-ca", "--enroll-cmd", "x"], "cannot be combined"),
])
def test_bad_input_is_refused(tmp_path: Path, customs_ca: object, capsys: pytest.CaptureFixture[str],
                              extra: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(capsys, tmp_path / "root", *extra)
    assert not (tmp_path / "root").exists()


def test_a_key_directory_of_another_device_is_refused(
        tmp_path: Path, customs_ca: object, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    run(capsys, root)
    with pytest.raises(ConfigError, match="belongs to another device id"):
        run(capsys, root, "--device-id", "cam-8")


def test_toml_writer_round_trips() -> None:
    data = {"a": {"s": 'quote " and \\ back', "n": 3, "f": 0.5, "b": True, "l": ["x", "y"],
                  "t": {"deep": "v", "odd key": 1}}, "z": {"k": "v"}}
    assert tomllib.loads(provision.to_toml(data)) == data


def test_dev_ca_later_issues_for_the_existing_key(
        tmp_path: Path, customs_ca: object, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    run(capsys, root)
    key_dir = root / "var/lib/evidence-agent/keys"
    key_before = (key_dir / "device.key").read_bytes()
    out = run(capsys, root, "--dev-ca")
    assert "issued by a development CA for the existing key" in out
    assert (key_dir / "device.key").read_bytes() == key_before
    assert keys.load_identity(key_dir).cert.subject.rfc4514_string().endswith("CN=cam-7")


@pytest.mark.parametrize(("subject", "eku", "days", "words"), [
    ("CN=cam-8", None, 825, "CN=cam-8 but device.id is 'cam-7'"),
    ("CN=cam-7", (x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,), 825, "emailProtection"),
    ("CN=cam-7", None, 0, "expired"),
])
def test_a_certificate_the_service_could_not_use_is_refused(
        tmp_path: Path, customs_ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
        capsys: pytest.CaptureFixture[str], subject: str, eku: tuple[x509.ObjectIdentifier, ...] | None,
        days: int, words: str) -> None:
    root = tmp_path / "root"
    run(capsys, root)
    csr = x509.load_pem_x509_csr((root / "var/lib/evidence-agent/keys/device.csr").read_bytes())
    leaf = keys.issue_leaf(customs_ca[0], customs_ca[1], x509.Name.from_rfc4514_string(subject),
                           csr.public_key(), days=days, eku=eku)  # type: ignore[arg-type]
    (tmp_path / "unfit.pem").write_bytes(leaf.public_bytes(PEM))
    (tmp_path / "chain.pem").write_bytes(customs_ca[1].public_bytes(PEM))
    with pytest.raises(ConfigError, match=words.replace("'", ".")):
        run(capsys, root, "--cert", str(tmp_path / "unfit.pem"), "--chain", str(tmp_path / "chain.pem"))
    assert not (root / "var/lib/evidence-agent/keys/device.pem").exists()

"""A stolen key after its revocation: the customs CA's CRL (``evidence-officer ca revoke`` + ``ca crl``) honoured by
Mosquitto (broker-setup ``--crl``), ``evidence-officer ingest --crl``, ``evidence-agent verify --crl`` and the
device's officer trust store (``crl.pem`` in its folder).

Before: nothing read a CRL; a stolen device key kept connecting and publishing, its evidence verified exit 0
and a revoked officer's signed commands were executed until the certificates expired.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core.clock import SystemClock
from agent.customs.keys import load_officer
from agent.wire.commands import CommandRejected, CommandVerifier, ReplayCache, TrustStore, sign_command
from agent.wire.mqtt import MqttLink
from tests.support.fleet import Fleet, agent_cli, officer_cli
from tests.support.hostile import Device, record_msg, sidecar
from tests.support.revocation import broker_setup_with_crl, ca, crl_path, enroll, next_second


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    f = Fleet(tmp_path_factory.mktemp("revocation"), ())
    for device in ("cam-honest", "cam-stolen", "cam-stolen-b", "cam-lost"):
        enroll(f, device)
    ca(f, "crl")  # an empty CRL: the broker needs one per client-issuing CA once crlfile is set
    broker_setup_with_crl(f)
    f.start()
    yield f
    f.stop()


def _connects(fleet: Fleet, device: str) -> bool:
    link = MqttLink(fleet.mqtt_config(device, client_id=f"{device}-{time.monotonic_ns()}"), name=device)
    link.start()
    try:
        return link.wait_connected(5)
    finally:
        link.close(offline=False)


def _refused_after_reload(fleet: Fleet, device: str, timeout: float = 30.0) -> bool:
    """SIGHUP (``systemctl reload mosquitto``) makes Mosquitto re-read ``crlfile``; wait until it has."""
    assert fleet.proc is not None
    fleet.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while _connects(fleet, device):
        if time.monotonic() > deadline:
            return False
    return True


def test_the_issued_device_certificate_carries_identity_site_and_key_usages(fleet: Fleet) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from agent.customs.ca.profiles import site_of
    from agent.signing.keys import DOCUMENT_SIGNING

    cert = x509.load_pem_x509_certificate((fleet.key_dir("cam-honest") / "device.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "cam-honest"
    assert site_of(cert) == "site-1"
    ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert {ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING, ExtendedKeyUsageOID.CLIENT_AUTH} <= ekus
    check = agent_cli("check-config", "/nonexistent.toml")  # the device tools still run
    assert check.returncode == 2
    log = [json.loads(line) for line in (fleet.root / "ca" / "issued.jsonl").read_text().splitlines()]
    assert any(e["op"] == "issue" and e["identity"] == "cam-honest" and e["site"] == "site-1" for e in log)


def test_a_revoked_device_is_refused_by_the_broker(fleet: Fleet) -> None:
    assert _connects(fleet, "cam-stolen-b") and _connects(fleet, "cam-honest")
    ca(fleet, "revoke", "cam-stolen-b", "--reason", "key_compromise")
    ca(fleet, "crl")
    assert _refused_after_reload(fleet, "cam-stolen-b")
    assert _connects(fleet, "cam-honest")  # only the revoked certificate is refused


def test_a_stolen_device_key_keeps_publishing_after_revocation_and_ingest_refuses_it(
        fleet: Fleet, tmp_path: Path) -> None:
    """The broker still lets it in (not yet reloaded, or a second broker): the ingest refuses it from the
    revocation time on, and keeps what arrived before."""
    out = tmp_path / "out"
    ingest = fleet.ingest(out, "--crl", str(crl_path(fleet)), idle=600.0, client_id="ingest-rev")
    thief = Device(tmp_path / "thief", "cam-stolen", keys=fleet.key_dir("cam-stolen"))
    link = fleet.link("cam-stolen")
    try:
        before = [sorted(thief.vault.path.rglob("000000000000.restart.rec"))[0].read_bytes(),
                  sidecar(thief.still(os.urandom(100))), sidecar(thief.event())]
        for payload in before:
            assert link.publish_wait(record_msg(thief, payload).topic, payload, qos=1, timeout=20).code < 0x80
        items = out / "cam-stolen" / "items"
        deadline = time.monotonic() + 60
        while len(list(items.rglob("*.rec"))) < len(before):
            assert time.monotonic() < deadline, "the ingest did not store the records sent before revocation"
            time.sleep(0.1)
        next_second()
        ca(fleet, "revoke", "cam-stolen", "--reason", "key_compromise")
        ca(fleet, "crl")  # the running ingest sees the new file
        after = [sidecar(thief.still(os.urandom(100))) for _ in range(3)]
        for payload in after:
            link.publish_wait(record_msg(thief, payload).topic, payload, qos=1, timeout=20)
        log_file = tmp_path / "ingest.log"
        while log_file.read_text(errors="replace").count("(revoked, 0x87)") < len(after):
            assert time.monotonic() < deadline + 60, "the ingest did not refuse the records sent after revocation"
            time.sleep(0.1)
        ingest.send_signal(signal.SIGTERM)  # stops, prints its report
        report_text, _ = ingest.communicate(timeout=120)
    finally:
        ingest.kill()
        link.close(offline=False)
        thief.close()
    report = json.loads(report_text)
    dev = report["devices"]["cam-stolen"]
    assert dev["records"] == len(before)  # what came before is kept
    assert dev["refusals"].get("revoked") == len(after), dev
    assert ingest.returncode == 1  # a finding
    assert len(list((out / "cam-stolen" / "items").rglob("*.rec"))) == len(before)
    log = (tmp_path / "ingest.log").read_text()
    assert "revoked" in log and "Traceback" not in log


def test_verify_does_not_trust_items_sealed_after_the_revocation(fleet: Fleet, tmp_path: Path) -> None:
    lost = Device(tmp_path / "lost", "cam-lost", keys=fleet.key_dir("cam-lost"))
    try:
        lost.still(os.urandom(500))
        vault = lost.vault.path
        res = agent_cli("verify", str(vault), "--ca", str(fleet.ca), "--crl", str(crl_path(fleet)), "--json")
        assert res.returncode == 0, res.stdout + res.stderr  # not revoked yet: trusted
        next_second()
        ca(fleet, "revoke", "cam-lost", "--reason", "key_compromise")
        crl = tmp_path / "after.crl.pem"
        ca(fleet, "crl", "--out", str(crl))
        next_second()
        late = lost.still(os.urandom(500))
    finally:
        lost.close()
    res = agent_cli("verify", str(vault), "--ca", str(fleet.ca), "--crl", str(crl), "--json")
    assert res.returncode == 3, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["trusted"] is False and doc["ok"] is True
    revoked = doc["revocation"]
    assert [i["seq"] for i in revoked["not_trusted"]] == [late.seq]
    assert revoked["trusted_before"] is not None
    text = agent_cli("verify", str(vault), "--ca", str(fleet.ca), "--crl", str(crl))
    assert text.returncode == 3 and "revoked" in text.stdout
    # a CRL not signed by the --ca is a usage error, never silently ignored
    other = tmp_path / "forged.crl.pem"
    other.write_text("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    bad = agent_cli("verify", str(vault), "--ca", str(fleet.ca), "--crl", str(other))
    assert bad.returncode == 2 and "forged.crl.pem" in bad.stderr and "Traceback" not in bad.stderr


def test_a_revoked_officer_cannot_command_the_device(fleet: Fleet, tmp_path: Path) -> None:
    keys = tmp_path / "officer-eve"
    ca(fleet, "issue-officer", "officer-eve", "--legal-name", "Eve Example", "--badge", "B-0017",
       "--out", str(keys))
    officer = load_officer(keys)
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(keys / "officer.pem", trust / "officer-eve.pem")
    (trust / "permissions.json").write_text('{"officer-eve": ["*"]}')
    clock = SystemClock()
    verifier = CommandVerifier("cam-honest", TrustStore(trust), ReplayCache(tmp_path / "nonces.sqlite"), clock)

    def command() -> bytes:
        wire = sign_command(officer.private_key, officer="officer-eve", device="cam-honest", command="status",
                            args={}, now_ms=clock.wall_ns() // 1_000_000)
        return json.dumps(wire).encode()

    shutil.copy(crl_path(fleet), trust / "crl.pem")  # the current CRL: eve is not on it
    assert verifier.verify(command()).officer == "officer-eve"
    (trust / "crl.pem").write_text("junk")  # an unreadable CRL fails closed: no officer until it is fixed
    with pytest.raises(CommandRejected):
        verifier.verify(command())
    shutil.copy(crl_path(fleet), trust / "crl.pem")
    assert verifier.verify(command()).officer == "officer-eve"
    ca(fleet, "revoke", "officer-eve", "--reason", "superseded")
    ca(fleet, "crl", "--out", str(trust / "crl.pem"))
    with pytest.raises(CommandRejected) as refused:
        verifier.verify(command())
    assert refused.value.code == "untrusted" and "revoked" in refused.value.detail


def test_a_revoked_officer_is_refused_by_the_running_device_service(tmp_path: Path) -> None:
    """The device's command service on Mosquitto, its trust folder fed by the real ``ca`` commands."""
    from agent.core.errors import VerificationError
    from tests.support.command_stack import DEVICE, SITE, build_stack

    ca_dir = tmp_path / "customs-ca"
    assert officer_cli("ca", "init", "--dir", str(ca_dir)).returncode == 0
    keys = tmp_path / "officer-mallory"  # an account the broker lets publish commands
    issued = officer_cli("ca", "issue-officer", "officer-mallory", "--legal-name", "M. Allory", "--badge", "B-9",
                         "--out", str(keys), "--dir", str(ca_dir))
    assert issued.returncode == 0, issued.stderr
    stack = build_stack(tmp_path / "stack")
    try:
        trust = stack.root / "trust"
        shutil.copy(keys / "officer.pem", trust / "officer-mallory.pem")
        grants = json.loads((trust / "permissions.json").read_text())
        (trust / "permissions.json").write_text(json.dumps({**grants, "officer-mallory": ["*"]}))
        assert officer_cli("ca", "crl", "--dir", str(ca_dir), "--out", str(trust / "crl.pem")).returncode == 0
        stack.officer_keys["officer-mallory"] = load_officer(keys)
        mallory = stack.officer("officer-mallory")
        assert mallory.request(SITE, DEVICE, "status")["ok"]
        assert officer_cli("ca", "revoke", "officer-mallory", "--reason", "privilege_withdrawn",
                           "--dir", str(ca_dir)).returncode == 0
        assert officer_cli("ca", "crl", "--dir", str(ca_dir), "--out", str(trust / "crl.pem")).returncode == 0
        # the device answers a command it cannot verify without naming its nonce (it is not bound to it),
        # so the officer's client sees "untrusted" as a reply it cannot accept as the command's answer
        with pytest.raises(VerificationError) as refused:
            mallory.request(SITE, DEVICE, "snapshot")
        assert "untrusted" in str(refused.value)
        assert stack.officer("officer-alice").request(SITE, DEVICE, "status")["ok"]  # the others still command
    finally:
        stack.close()

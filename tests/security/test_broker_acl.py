"""The shipped least-privilege ACL, on Mosquitto started from `evidence-officer broker-setup` output.

Before: every client could write ``officer/+/reply/#`` (forged replies) and officer/ingest accounts could
publish under ``evidence/+/<their name>/`` like devices (both allowed by the old documented ACL).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fleet import Fleet

DENIED = 0x87

CASES = [
    # (identity, topic, allowed?)
    ("cam-good", "evidence/site-1/cam-good/record", True),
    ("cam-good", "evidence/site-1/cam-good/status", True),
    ("cam-good", "officer/officer-alice/reply/cam-good/abc", True),  # its own reply slot
    ("cam-good", "evidence/site-1/cam-victim/record", False),  # another device's subtree
    ("cam-good", "officer/officer-alice/reply/cam-victim/abc", False),  # another device's reply slot
    ("cam-good", "evidence/site-1/cam-victim/cmd", False),  # commands are the officers'
    ("officer-alice", "evidence/site-1/cam-good/cmd", True),
    ("officer-alice", "evidence/site-1/officer-alice/record", False),  # not a device
    ("officer-alice", "officer/officer-alice/reply/cam-good/abc", False),  # cannot forge a device's reply
    ("officer-alice", "officer/officer-alice/reply/officer-alice/abc", False),
    ("officer-alice", "evidence/site-1/cam-good/record", False),
    ("ingest-1", "evidence/site-1/ingest-1/record", False),  # ingest reads only
    ("ingest-1", "evidence/site-1/cam-good/record", False),
    ("ingest-1", "officer/officer-alice/reply/ingest-1/x", False),
    # a device publishes only its fixed channels under its registered site (registry.toml)
    ("cam-good", "evidence/site-2/cam-good/status", False),  # a phantom site
    ("cam-good", "evidence/site-1/cam-good/junk-1", False),  # retained junk needs a topic: none but its own
    ("cam-good", "evidence/site-1/cam-good/record/x", False),
    ("cam-good", "evidence/site-1/cam-good/live/abc", True),
    ("officer-alice", "evidence/phantom/cam-good/cmd", False),  # commands only to registered devices
    ("officer-alice", "evidence/site-1/cam-unregistered/cmd", False),
    # two-way voice: officers write registered devices' talk topics (each message officer-signed), devices none
    ("officer-alice", "evidence/site-1/cam-good/talk/abc", True),
    ("officer-alice", "evidence/site-1/cam-unregistered/talk/abc", False),
    ("officer-alice", "evidence/site-1/cam-good/talk/abc/x", False),
    ("cam-good", "evidence/site-1/cam-good/talk/abc", False),
    ("cam-good", "evidence/site-1/cam-victim/talk/abc", False),
]


@pytest.mark.parametrize(("identity", "topic", "allowed"), CASES)
def test_acl_write(fleet: Fleet, identity: str, topic: str, allowed: bool) -> None:
    link = fleet.link(identity, client_id=f"acl-{identity}-{abs(hash(topic)) % 10**6}")
    try:
        result = link.publish_wait(topic, b"{}", qos=1)
    finally:
        link.close(offline=False)
    assert (result.code < 0x80) is allowed, (identity, topic, result)
    if not allowed:
        assert result.code == DENIED


@pytest.mark.parametrize(("identity", "granted"), [("cam-good", False), ("officer-alice", False),
                                                   ("ingest-1", True)])
def test_only_ingest_accounts_may_join_a_shared_group(fleet: Fleet, identity: str, granted: bool) -> None:
    """acl_file cannot refuse a SUBSCRIBE; the dynamic-security rules written by broker-setup do."""
    link = fleet.link(identity, client_id=f"share-{identity}")
    try:
        codes = link.subscribe_wait("$share/ingest/evidence/+/+/record", lambda _m: None)
    finally:
        link.close(offline=False)
    assert (codes[0] < 0x80) is granted, (identity, codes)


def test_broker_setup_needs_a_site_for_each_new_device(fleet: Fleet, tmp_path: Path) -> None:
    from tests.support.fleet import officer_cli

    bare = officer_cli("broker-setup", str(tmp_path / "b"), "--device", "cam-x")
    assert bare.returncode == 2 and "cam-x=SITE" in bare.stderr and "Traceback" not in bare.stderr
    reg = tmp_path / "reg.toml"
    reg.write_text('[devices]\ncam-y = "site-9"\n')
    ok = officer_cli("broker-setup", str(tmp_path / "b"), "--registry", str(reg), "--device", "cam-z=site-8")
    assert ok.returncode == 0, ok.stderr
    acl = (tmp_path / "b" / "acl.conf").read_text()
    assert "topic write evidence/site-9/cam-y/record" in acl and "topic write evidence/site-8/cam-z/record" in acl
    assert "pattern write evidence/+/%u/#" not in acl
    again = officer_cli("broker-setup", str(tmp_path / "b"), "--device", "cam-y")  # registered: kept
    assert again.returncode == 0, again.stderr
    assert "cam-z" in (tmp_path / "b" / "registry.toml").read_text()
    junk = tmp_path / "junk.toml"
    junk.write_text('[devices]\n"cam/../x" = "s"\n')
    bad = officer_cli("broker-setup", str(tmp_path / "c"), "--registry", str(junk))
    assert bad.returncode == 2 and str(junk) in bad.stderr and "Traceback" not in bad.stderr


def test_broker_setup_layout_and_rerun_keeps_the_ca(fleet: Fleet) -> None:
    from tests.support.fleet import officer_cli

    ca_before = fleet.ca.read_bytes()
    assert oct((fleet.root / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert (fleet.root / "devices" / "cam-good" / "ca.pem").read_bytes() == ca_before
    res = officer_cli("broker-setup", str(fleet.root), "--port", str(fleet.port), "--bind", "127.0.0.1",
                      "--officer", "officer-alice", "--device", "cam-new=site-1")
    assert res.returncode == 0, res.stderr
    assert fleet.ca.read_bytes() == ca_before and (fleet.root / "devices" / "cam-new" / "device.pem").exists()
    bad = officer_cli("broker-setup", str(fleet.root / "x"), "--officer", "bad/name")
    assert bad.returncode == 2 and "bad/name" in bad.stderr and "Traceback" not in bad.stderr

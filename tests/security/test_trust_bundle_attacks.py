"""Attacks on officer trust bundles, at the device's applier (the real CA, admin and officer certificates).

A bundle the device must refuse, with a logged reason and nothing installed: one signed by any key but the
fleet-admin key it was provisioned with (an officer's, a device's — all from the same CA), an older version
replayed, an expired one, one altered after signing, one whose officer certificate names someone else.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.clock import SystemClock
from agent.customs.ca.folder import CaFolder
from agent.customs.ca.profiles import officer_certificate
from agent.customs.trust.admin import issue_admin, load_admin
from agent.uplink.trust_bundle import TrustBundleApplier
from agent.wire.commands import TrustStore
from agent.wire.trust_bundle import OfficerGrant, sign_bundle


class World:
    def __init__(self, root: Path) -> None:
        self.ca = CaFolder(root / "ca")
        self.ca.init("Test CA", "Customs", 3650)
        self.ca_key, self.ca_cert = self.ca.load()
        issue_admin(self.ca_key, self.ca_cert, root / "admin", "fleet-admin", "Customs", 30)
        self.admin = load_admin(root / "admin")
        self.trust = root / "state" / "officers"
        self.trust.mkdir(parents=True)
        (self.trust / "permissions.json").write_text("{}")  # what provision writes
        self.sealed: list[dict[str, object]] = []
        self.applier = TrustBundleApplier(self.trust, root / "admin" / "admin.pem", SystemClock(),
                                          seal=self.sealed.append)

    def officer(self, name: str) -> tuple[ec.EllipticCurvePrivateKey, OfficerGrant]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = officer_certificate(self.ca_key, self.ca_cert, key.public_key(), name, "A. Name", "B-1", "Customs")
        return key, OfficerGrant(name, cert.public_bytes(serialization.Encoding.PEM).decode(), ("*",))

    def bundle(self, version: int, grants: dict[str, OfficerGrant], *, key: ec.EllipticCurvePrivateKey | None = None,
               days: float = 1.0, issued_ms: int | None = None) -> bytes:
        now = issued_ms if issued_ms is not None else int(time.time() * 1000)
        return sign_bundle(key or self.admin.key, admin="fleet-admin", version=version, officers=grants,
                           crl_pem=None, issued_ms=now, not_after_ms=now + int(days * 86_400_000))


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _officers(trust: Path) -> list[str]:
    return sorted(o.officer_id for o in TrustStore(trust).officers())


def test_a_bundle_from_the_admin_is_installed_atomically_and_sealed(world: World) -> None:
    _, alice = world.officer("officer-alice")
    store = TrustStore(world.trust)
    assert store.officers() == []
    assert world.applier.apply(world.bundle(5, {"officer-alice": alice})) is not None
    assert world.trust.is_symlink()  # one rename switched the folder
    assert [o.officer_id for o in store.officers()] == ["officer-alice"]
    assert world.applier.version() == 5
    assert world.sealed[-1]["type"] == "trust_updated" and world.sealed[-1]["version"] == 5
    assert (world.trust.parent / ".officers.d" / "v0-provisioned" / "permissions.json").exists()
    status = world.applier.status()["trust"]
    assert status["version"] == 5 and status["officers"] == ["officer-alice"] and status["last_refusal"] is None


def test_a_bundle_signed_by_an_officer_key_of_the_same_ca_is_refused(world: World,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    mallory_key, mallory = world.officer("officer-mallory")
    caplog.set_level(logging.WARNING)
    assert world.applier.apply(world.bundle(10, {"officer-mallory": mallory}, key=mallory_key)) is None
    assert _officers(world.trust) == [] and not world.trust.is_symlink()
    assert "untrusted" in (world.applier.last_refusal or "") and "fleet-admin" in caplog.text
    assert world.sealed == []


def test_an_altered_bundle_is_refused(world: World) -> None:
    _, alice = world.officer("officer-alice")
    _, mallory = world.officer("officer-mallory")
    wire = json.loads(world.bundle(3, {"officer-alice": alice}))
    wire["body"]["officers"]["officer-mallory"] = {"cert": mallory.cert_pem, "commands": ["*"]}
    assert world.applier.apply(json.dumps(wire).encode()) is None
    assert "bad_signature" in (world.applier.last_refusal or "")
    assert _officers(world.trust) == []


def test_an_older_version_replayed_is_refused(world: World) -> None:
    _, alice = world.officer("officer-alice")
    old = world.bundle(7, {"officer-alice": alice})  # alice still trusted in version 7
    assert world.applier.apply(old) is not None
    assert world.applier.apply(world.bundle(8, {})) is not None  # alice removed in version 8
    assert world.applier.apply(old) is None
    assert "downgrade" in (world.applier.last_refusal or "")
    assert world.applier.version() == 8 and _officers(world.trust) == []
    assert world.applier.apply(world.bundle(8, {"officer-alice": alice})) is None  # same number, other content


def test_an_expired_bundle_is_refused(world: World) -> None:
    _, alice = world.officer("officer-alice")
    long_ago = int(time.time() * 1000) - 3 * 86_400_000
    assert world.applier.apply(world.bundle(9, {"officer-alice": alice}, issued_ms=long_ago, days=1)) is None
    assert "expired" in (world.applier.last_refusal or "")
    assert _officers(world.trust) == []


def test_a_bundle_refused_for_a_wrong_clock_is_tried_again_once_the_clock_is_right(world: World) -> None:
    _, alice = world.officer("officer-alice")
    payload = world.bundle(11, {"officer-alice": alice})
    real = world.applier.clock
    world.applier.clock = type("Boot", (), {"wall_ns": staticmethod(lambda: 0)})()  # 1970: no RTC, no fix yet
    assert world.applier.apply(payload) is None
    assert "not_yet_valid" in (world.applier.last_refusal or "")
    world.applier.clock = real  # GPS/NTP set the clock
    assert world.applier.status()["trust"]["version"] == 11
    assert _officers(world.trust) == ["officer-alice"]


def test_an_officer_entry_must_carry_that_officers_certificate(world: World) -> None:
    _, alice = world.officer("officer-alice")
    impostor = OfficerGrant("officer-bob", alice.cert_pem, ("*",))
    assert world.applier.apply(world.bundle(4, {"officer-bob": impostor})) is None
    assert "malformed" in (world.applier.last_refusal or "")


def test_an_officer_named_like_the_crl_file_is_refused(world: World) -> None:
    _, crl = world.officer("crl")
    assert world.applier.apply(world.bundle(4, {"crl": crl})) is None
    assert "reserved" in (world.applier.last_refusal or "")


def test_a_bundle_needs_the_admin_certificate_the_device_was_provisioned_with(world: World) -> None:
    _, alice = world.officer("officer-alice")
    payload = world.bundle(2, {"officer-alice": alice})
    world.applier.admin_cert_path.write_text("garbage")
    assert world.applier.apply(payload) is None
    assert "unreadable" in (world.applier.last_refusal or "")


def test_a_version_that_cannot_be_written_keeps_the_old_trust_and_says_why(world: World) -> None:
    _, alice = world.officer("officer-alice")
    (world.trust.parent / ".officers.d").write_text("in the way")  # as root, permissions would not stop it
    assert world.applier.apply(world.bundle(6, {"officer-alice": alice})) is None
    assert "cannot install version 6" in (world.applier.last_refusal or "")
    assert world.applier.version() == 0 and not world.trust.is_symlink()

"""The controller: dispatch, signed replies on the response topic, and never a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.core.clock import ManualClock
from agent.core.errors import CaptureError, VerificationError
from agent.customs.keys import OfficerKey, init_officer
from agent.device.sealer import Sealer
from agent.signing.keys import DeviceIdentity
from agent.signing.trust import verify_chain
from agent.uplink.command_controller import CommandController, mark_handler
from agent.wire.commands import CommandVerifier, ReplayCache, TrustStore, sign_command
from agent.wire.replies import REPLY_TYP, verify_device_object
from tests.support.helpers import moment

DEVICE = "test-device"
REPLY_TOPIC = "officer/officer-alice/reply/abc123"


@pytest.fixture
def alice(tmp_path: Path) -> OfficerKey:
    return init_officer(tmp_path / "alice", "officer-alice")


class Box:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    def publish(self, topic: str, payload: bytes, corr: bytes | None) -> None:
        self.sent.append((topic, payload, corr))


@pytest.fixture
def box() -> Box:
    return Box()


@pytest.fixture
def controller(tmp_path: Path, alice: OfficerKey, identity: DeviceIdentity, manual_clock: ManualClock,
               sealer: Sealer, box: Box) -> Iterator[CommandController]:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "a.pem").write_bytes(alice.cert.public_bytes(serialization.Encoding.PEM))
    (trust / "permissions.json").write_text(json.dumps({"officer-alice": ["*"]}))
    replay = ReplayCache(tmp_path / "replay.sqlite")
    verifier = CommandVerifier(DEVICE, TrustStore(trust), replay, manual_clock)

    def crash(_req: Any, _args: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    def camera_gone(_req: Any, _args: Any) -> dict[str, Any]:
        raise CaptureError("camera unplugged")

    handlers = {"status": lambda _r, _a: {"disk_free": 123}, "selftest": crash, "snapshot": camera_gone,
                "mark": mark_handler(sealer.seal, lambda: moment(manual_clock))}
    yield CommandController(DEVICE, verifier, identity, manual_clock, box.publish, handlers)
    replay.close()


def cmd(alice: OfficerKey, clock: ManualClock, command: str, args: dict[str, Any] | None = None,
        device: str = DEVICE) -> bytes:
    return json.dumps(sign_command(alice.private_key, officer=alice.officer_id, device=device, command=command,
                                   args=args, now_ms=clock.wall_ns() // 1_000_000)).encode()


def test_ok_reply_is_signed_and_correlated(controller: CommandController, box: Box, alice: OfficerKey,
                                           manual_clock: ManualClock, identity: DeviceIdentity) -> None:
    payload = cmd(alice, manual_clock, "status")
    body = controller.handle(payload, REPLY_TOPIC, b"corr-1")
    assert body["ok"] and body["result"] == {"disk_free": 123}
    topic, wire, corr = box.sent[-1]
    assert (topic, corr) == (REPLY_TOPIC, b"corr-1")
    checked, leaf = verify_device_object(json.loads(wire), typ=REPLY_TYP, device=DEVICE,
                                         trusted_cas=list(identity.chain[1:]))
    assert checked["nonce"] == json.loads(payload)["body"]["nonce"] and leaf == identity.cert


def test_error_replies(controller: CommandController, box: Box, alice: OfficerKey,
                       manual_clock: ManualClock) -> None:
    cases = [
        (b"garbage", "malformed"),
        (cmd(alice, manual_clock, "selftest"), "failed"),  # handler crashed: reply, log, carry on
        (cmd(alice, manual_clock, "snapshot"), "failed"),  # AgentError from the camera
        (cmd(alice, manual_clock, "mark", {"note": ""}), "bad_args"),
        (cmd(alice, manual_clock, "mark", {"note": "x", "extra": 1}), "bad_args"),
        (cmd(alice, manual_clock, "live.start"), "unknown_command"),  # no live manager on this controller
    ]
    for payload, code in cases:
        body = controller.handle(payload, REPLY_TOPIC, b"c")
        assert not body["ok"] and body["error"]["code"] == code, (payload[:40], body)
        assert json.loads(box.sent[-1][1])["body"]["error"]["code"] == code
    replay = cmd(alice, manual_clock, "status")
    controller.handle(replay, REPLY_TOPIC, b"1")
    assert controller.handle(replay, REPLY_TOPIC, b"2")["error"]["code"] == "replay"
    assert controller.handle(cmd(alice, manual_clock, "status"), REPLY_TOPIC, b"3")["ok"]


def test_a_rejection_names_only_a_verified_nonce(controller: CommandController, alice: OfficerKey,
                                                 manual_clock: ManualClock) -> None:
    """Before: the nonce an unverifiable command claimed was copied into the device-signed reply."""
    wire = json.loads(cmd(alice, manual_clock, "status"))
    wire["body"]["device"] = "someone-else"
    body = controller.handle(json.dumps(wire).encode(), REPLY_TOPIC, b"c")
    assert body["error"]["code"] == "bad_signature" and body["nonce"] is None and body["officer"] is None
    verified = json.loads(cmd(alice, manual_clock, "status", device="someone-else"))  # signed, wrong device
    body = controller.handle(json.dumps(verified).encode(), REPLY_TOPIC, b"d")
    assert body["error"]["code"] == "wrong_device" and body["nonce"] == verified["body"]["nonce"]


def test_a_verified_command_is_answered_only_on_its_officers_topic(controller: CommandController, box: Box,
                                                                   alice: OfficerKey,
                                                                   manual_clock: ManualClock) -> None:
    controller.handle(cmd(alice, manual_clock, "status"), "officer/officer-bob/reply/dev/x", b"c")
    assert box.sent == []


def test_reply_only_to_officer_topics(controller: CommandController, box: Box, alice: OfficerKey,
                                      manual_clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    controller.handle(cmd(alice, manual_clock, "status"), None, None)
    controller.handle(cmd(alice, manual_clock, "status"), "evidence/site/other-device/record", b"x")
    controller.handle(b"junk", "officer/+/reply", b"x")
    assert box.sent == []
    assert "refusing to reply" in caplog.text


def test_mark_is_sealed_with_the_signed_command(controller: CommandController, alice: OfficerKey,
                                                manual_clock: ManualClock, sealer: Sealer) -> None:
    payload = cmd(alice, manual_clock, "mark", {"note": "container MSKU 123 opened"})
    body = controller.handle(payload, REPLY_TOPIC, b"c")
    assert body["ok"]
    record = json.loads(Path(sealer.vault.path / "items").glob("*/*.mark.rec").__next__().read_text()
                        .splitlines()[0])
    assert record["kind"] == "mark" and record["seq"] == body["result"]["seq"]
    assert record["extra"]["note"] == "container MSKU 123 opened"
    assert record["extra"]["officer"] == "officer-alice"
    assert record["extra"]["command"] == json.loads(payload)


def test_publish_failure_does_not_crash(controller: CommandController, alice: OfficerKey,
                                        manual_clock: ManualClock) -> None:
    def broken(*_a: Any) -> None:
        raise OSError("socket gone")

    controller.publish = broken
    assert controller.handle(cmd(alice, manual_clock, "status"), REPLY_TOPIC, b"c")["ok"]


def test_reply_verification_failures(controller: CommandController, box: Box, alice: OfficerKey,
                                     manual_clock: ManualClock, tmp_path: Path) -> None:
    controller.handle(cmd(alice, manual_clock, "status"), REPLY_TOPIC, b"c")
    wire = json.loads(box.sent[-1][1])
    with pytest.raises(VerificationError, match="expected device"):
        verify_device_object(wire, typ=REPLY_TYP, device="another-device")
    other_ca = init_officer(tmp_path / "x", "not-a-ca").cert
    with pytest.raises(VerificationError, match="trusted CA"):
        verify_device_object(wire, typ=REPLY_TYP, device=DEVICE, trusted_cas=[other_ca])
    wire["body"]["ok"] = False
    with pytest.raises(VerificationError, match="signature"):
        verify_device_object(wire, typ=REPLY_TYP, device=DEVICE)
    with pytest.raises(VerificationError, match="malformed"):
        verify_device_object({"body": {}}, typ=REPLY_TYP, device=DEVICE)


def test_check_chain_accepts_the_root_itself(identity: DeviceIdentity) -> None:
    chain: list[x509.Certificate] = list(identity.chain)
    assert verify_chain(chain, [chain[-1]], device=DEVICE).trusted
    assert verify_chain(chain[:1], [chain[-1]], device=DEVICE).trusted
    with pytest.raises(VerificationError, match="not 'another'"):
        verify_chain(chain, [chain[-1]], device="another")

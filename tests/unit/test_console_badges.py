"""Badge lines say what the checks compared for this fragment/alert, not a fixed "valid": a P-384 key is named
P-384, the order line names the sequence number it came after, the age line the measured age, the chain line
whether a device CA vouched."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.customs.console.fleet_state import FleetTracker
from agent.customs.console.live import FragmentChecker, checks_of
from agent.signing.keys import DeviceIdentity
from agent.signing.records import sign_record
from agent.wire.live_frames import FRAGMENT_TYP, pack_message
from agent.wire.mqtt import Inbound

DEVICE, SESSION, NONCE = "test-device", "s" * 24, "n" * 32


class P384Signer:
    """A device key on another curve: the badge must name the curve it actually checked."""

    key_id = "k" * 64

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP384R1())

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def chain_der(self) -> list[bytes]:
        return []


def fragment(signer: Any, seq: int, now_us: int, *, kind: str = "media", age_s: float = 0.0,
             data: bytes = b"") -> bytes:
    wall = now_us - int(age_s * 1e6)
    h: dict[str, Any] = {"typ": FRAGMENT_TYP, "device": DEVICE, "session": SESSION, "nonce": NONCE, "seq": seq,
                         "kind": kind, "data_sha256": hashlib.sha256(data).hexdigest()}
    if kind == "media":
        h.update({"keyframe": True, "frames": [[0, wall - 100], [66, wall]], "capture_start_wall_us": wall - 100,
                  "capture_end_wall_us": wall})
    return pack_message(h, signer, data)


def test_fragment_lines_come_from_what_was_compared() -> None:
    signer = P384Signer()
    c = FragmentChecker(DEVICE, SESSION, NONCE, signer.key.public_key(), max_age_s=5, max_skew_s=2)
    now = time.time_ns() // 1000
    assert c.check(fragment(signer, 0, now, kind="init", data=b"init"), now)[0] == "pass"
    verdict, h, _data = c.check(fragment(signer, 7, now, age_s=1.25, data=b"x" * 1234), now)
    assert verdict == "pass" and c.checked is not None
    lines = checks_of(h, now, "chain line", c.checked)["lines"]
    assert lines[0] == "chain line"
    assert lines[1] == "ECDSA P-384 / SHA-256 signature valid for test-device's certificate key"
    assert "session ssssssss…" in lines[2] and "nonce nnnnnnnn… (ours)" in lines[2]
    assert lines[3] == f"1234 bytes match the signed SHA-256 {hashlib.sha256(b'x' * 1234).hexdigest()[:12]}…"
    assert lines[4] == "seq 7 in order (after 0)"
    assert lines[5] == "captured 1.25 s ago (live: at most 5 s old, 2 s ahead)"


def test_alert_lines_say_whether_a_device_ca_vouched(identity: DeviceIdentity) -> None:
    record = {"seq": 3, "kind": "event", "key_id": identity.key_id, "captured": {"wall": "2026-12-02T10:00:01Z"},
              "extra": {"type": "frozen", "phase": "onset"}}
    wire = sign_record(record, identity).to_sidecar()
    msg = Inbound(topic=f"evidence/site-1/{DEVICE}/alert", payload=wire, qos=1, retain=False, user_props=(),
                  response_topic=None, correlation_data=None, content_type=None)
    for cas, says in (([identity.chain[-1]], "chains to the configured device CA"),
                      (None, "no device CA vouches for it")):
        fleet = FleetTracker(device_cas=cas)
        fleet.handle(msg)
        alert = fleet.device("site-1", DEVICE)["alerts"][0]  # type: ignore[index]
        assert alert["verified"].startswith("ECDSA P-256 / SHA-256 signature valid; ") and says in alert["verified"]
        json.dumps(alert)

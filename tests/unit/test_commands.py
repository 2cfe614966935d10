"""Signed officer commands: every way a command can be wrong gets its own clear rejection code."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.clock import ManualClock
from agent.customs.keys import OfficerKey, init_officer, load_officer
from agent.wire.commands import CommandRejected, CommandVerifier, ReplayCache, TrustStore, sign_command

DEVICE = "test-device"


@pytest.fixture
def alice(tmp_path: Path) -> OfficerKey:
    return init_officer(tmp_path / "alice", "officer-alice")


@pytest.fixture
def trust_dir(tmp_path: Path, alice: OfficerKey) -> Path:
    d = tmp_path / "trust"
    d.mkdir()
    (d / "officer-alice.pem").write_bytes(alice.cert.public_bytes(serialization.Encoding.PEM))
    (d / "permissions.json").write_text(json.dumps({"officer-alice": ["*"]}))
    return d


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[ReplayCache]:
    r = ReplayCache(tmp_path / "state" / "replay.sqlite")
    yield r
    r.close()


@pytest.fixture
def verifier(trust_dir: Path, replay: ReplayCache, manual_clock: ManualClock) -> CommandVerifier:
    return CommandVerifier(DEVICE, TrustStore(trust_dir), replay, manual_clock, max_ttl_s=300, skew_s=30)


def signed(who: OfficerKey, clock: ManualClock, command: str = "status", args: dict[str, Any] | None = None,
           **kw: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"officer": who.officer_id, "device": DEVICE, "ttl_s": 60.0}
    opts.update(kw)
    return sign_command(who.private_key, command=command, args=args, now_ms=clock.wall_ns() // 1_000_000,
                        **opts)


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def code_of(verifier: CommandVerifier, payload: bytes) -> str:
    with pytest.raises(CommandRejected) as info:
        verifier.verify(payload)
    return info.value.code


def test_valid_command_is_accepted(verifier: CommandVerifier, alice: OfficerKey, manual_clock: ManualClock) -> None:
    wire = signed(alice, manual_clock, "mark", {"note": "seal 4471 intact"})
    req = verifier.verify(raw(wire))
    assert (req.command, req.officer, req.args["note"]) == ("mark", "officer-alice", "seal 4471 intact")
    assert req.key_id == alice.key_id and req.nonce == wire["body"]["nonce"]


def test_unsigned_and_tampered(verifier: CommandVerifier, alice: OfficerKey, manual_clock: ManualClock) -> None:
    wire = signed(alice, manual_clock)
    assert code_of(verifier, raw({"body": wire["body"]})) == "unsigned"
    tampered = json.loads(json.dumps(wire))
    tampered["body"]["command"] = "selftest"
    assert code_of(verifier, raw(tampered)) == "bad_signature"
    wire["sig"] = "not base64!"
    assert code_of(verifier, raw(wire)) == "malformed"


def test_key_not_in_trust_store(verifier: CommandVerifier, tmp_path: Path, manual_clock: ManualClock) -> None:
    mallory = init_officer(tmp_path / "mallory", "officer-alice")  # same name, different key
    assert code_of(verifier, raw(signed(mallory, manual_clock))) == "untrusted"


def test_officer_must_match_key(verifier: CommandVerifier, alice: OfficerKey, manual_clock: ManualClock) -> None:
    assert code_of(verifier, raw(signed(alice, manual_clock, officer="officer-bob"))) == "unauthorized"


def test_permissions_restrict_commands(trust_dir: Path, replay: ReplayCache, alice: OfficerKey,
                                       manual_clock: ManualClock) -> None:
    (trust_dir / "permissions.json").write_text(json.dumps({"officer-alice": ["status"]}))
    v = CommandVerifier(DEVICE, TrustStore(trust_dir), replay, manual_clock)
    assert v.verify(raw(signed(alice, manual_clock, "status"))).command == "status"
    assert code_of(v, raw(signed(alice, manual_clock, "snapshot"))) == "unauthorized"


@pytest.mark.parametrize("perms, why", [
    (None, "has no permissions.json"),
    ({"officer-bob": ["*"]}, "not listed"),
    ({"officer-alice": "status"}, "is invalid"),
    ({"officer-alice": []}, "not granted to officer-alice"),
], ids=["missing", "unlisted", "invalid", "empty"])
def test_permissions_fail_closed(trust_dir: Path, replay: ReplayCache, alice: OfficerKey, manual_clock: ManualClock,
                                 perms: Any, why: str) -> None:
    path = trust_dir / "permissions.json"
    path.unlink()
    if perms is not None:
        path.write_text(json.dumps(perms))
    v = CommandVerifier(DEVICE, TrustStore(trust_dir), replay, manual_clock)
    with pytest.raises(CommandRejected) as info:
        v.verify(raw(signed(alice, manual_clock, "status")))
    assert info.value.code == "unauthorized" and why in info.value.detail, info.value.detail
    assert info.value.verified is not None and info.value.verified.officer == "officer-alice"


def test_star_entries_are_explicit_grants(trust_dir: Path, replay: ReplayCache, alice: OfficerKey,
                                          manual_clock: ManualClock) -> None:
    (trust_dir / "permissions.json").write_text(json.dumps({"*": ["status"], "officer-bob": ["*"]}))
    v = CommandVerifier(DEVICE, TrustStore(trust_dir), replay, manual_clock)
    assert v.verify(raw(signed(alice, manual_clock, "status"))).command == "status"
    assert code_of(v, raw(signed(alice, manual_clock, "snapshot"))) == "unauthorized"
    (trust_dir / "permissions.json").write_text(json.dumps({"officer-alice": ["live.start"]}))
    officer = TrustStore(trust_dir).lookup(alice.key_id)
    assert officer is not None and officer.commands == {"live.start", "live.keepalive", "live.stop"}


def test_revocation_by_removing_the_file(verifier: CommandVerifier, trust_dir: Path, alice: OfficerKey,
                                         manual_clock: ManualClock) -> None:
    verifier.verify(raw(signed(alice, manual_clock)))
    (trust_dir / "officer-alice.pem").unlink()
    assert code_of(verifier, raw(signed(alice, manual_clock))) == "untrusted"


def test_bare_public_key_in_trust_store(tmp_path: Path, replay: ReplayCache, manual_clock: ManualClock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    d = tmp_path / "trust2"
    d.mkdir()
    (d / "officer-carol.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (d / "junk.pem").write_text("not a key")  # skipped with a log line, not fatal
    (d / "permissions.json").write_text(json.dumps({"officer-carol": ["status"]}))
    v = CommandVerifier(DEVICE, TrustStore(d), replay, manual_clock)
    wire = sign_command(key, officer="officer-carol", device=DEVICE, command="status", args={},
                        now_ms=manual_clock.wall_ns() // 1_000_000)
    assert v.verify(raw(wire)).officer == "officer-carol"


def test_wrong_device(verifier: CommandVerifier, alice: OfficerKey, manual_clock: ManualClock) -> None:
    assert code_of(verifier, raw(signed(alice, manual_clock, device="other-device"))) == "wrong_device"


def test_expiry_and_clock_skew(verifier: CommandVerifier, alice: OfficerKey, manual_clock: ManualClock) -> None:
    old = signed(alice, manual_clock, ttl_s=10)
    manual_clock.advance(45)  # past expiry + 30 s skew
    assert code_of(verifier, raw(old)) == "expired"
    future = sign_command(alice.private_key, officer=alice.officer_id, device=DEVICE, command="status", args={},
                          now_ms=manual_clock.wall_ns() // 1_000_000 + 120_000)
    assert code_of(verifier, raw(future)) == "not_yet_valid"
    assert code_of(verifier, raw(signed(alice, manual_clock, ttl_s=3600))) == "bad_expiry"
    within_skew = signed(alice, manual_clock, ttl_s=10)
    manual_clock.advance(20)
    verifier.verify(raw(within_skew))


def test_unknown_command(verifier: CommandVerifier, alice: OfficerKey, manual_clock: ManualClock) -> None:
    assert code_of(verifier, raw(signed(alice, manual_clock, "format-disk"))) == "unknown_command"


def test_replay_rejected_also_after_restart(tmp_path: Path, trust_dir: Path, alice: OfficerKey,
                                            manual_clock: ManualClock) -> None:
    db = tmp_path / "replay.sqlite"
    first = ReplayCache(db)
    v = CommandVerifier(DEVICE, TrustStore(trust_dir), first, manual_clock)
    wire = raw(signed(alice, manual_clock))
    v.verify(wire)
    assert code_of(v, wire) == "replay"
    first.close()
    second = ReplayCache(db)  # the device restarted
    v2 = CommandVerifier(DEVICE, TrustStore(trust_dir), second, manual_clock)
    assert code_of(v2, wire) == "replay"
    # a fresh signature over the same nonce is a replay too
    again = signed(alice, manual_clock, nonce=json.loads(wire)["body"]["nonce"])
    assert code_of(v2, raw(again)) == "replay"
    second.close()


def test_replay_cache_prunes_expired(tmp_path: Path) -> None:
    cache = ReplayCache(tmp_path / "r.sqlite", skew_ms=0)
    for i in range(300):
        assert cache.claim(f"{i:032x}", "k", expires_ms=1000, now_ms=500, mono_ns=0)
    assert cache.claim("f" * 32, "k", expires_ms=10_000_000, now_ms=5000, mono_ns=10**9)  # 1 s later (monotonic)
    for i in range(300, 512):
        cache.claim(f"{i:032x}", "k", expires_ms=10_000_000, now_ms=5000, mono_ns=10**9)
    assert len(cache) < 300
    cache.close()


@pytest.mark.parametrize("payload, code", [
    (b"", "malformed"),
    (b"\xff\xfe", "malformed"),
    (b"[1,2]", "malformed"),
    (b'{"a":1,"a":2}', "malformed"),
    (b'{"sig":"x","key_id":"y","body":NaN}', "malformed"),
    (b'{"sig":"x","key_id":"y","alg":"ES256","body":{}}', "malformed"),
    (b"{" * 5000, "malformed"),
    (b" " * 20_000, "too_large"),
])
def test_malformed(verifier: CommandVerifier, payload: bytes, code: str) -> None:
    assert code_of(verifier, payload) == code


def test_body_field_types(verifier: CommandVerifier, alice: OfficerKey, manual_clock: ManualClock) -> None:
    wire = signed(alice, manual_clock)
    for key, bad in (("issued_ms", "1"), ("issued_ms", True), ("expires_ms", -1), ("nonce", "XYZ"),
                     ("args", []), ("command", 5), ("typ", "other")):
        w = json.loads(json.dumps(wire))
        w["body"][key] = bad
        assert code_of(verifier, raw(w)) == "malformed", key
    w = json.loads(json.dumps(wire))
    w["body"]["extra"] = 1
    assert code_of(verifier, raw(w)) == "malformed"


def test_signature_is_over_rfc8785_body(alice: OfficerKey, manual_clock: ManualClock) -> None:
    """A third party can check a command with the officer certificate and openssl alone."""
    wire = signed(alice, manual_clock, "mark", {"note": "ünïcode ✓"})
    from cryptography.hazmat.primitives import hashes

    key = alice.cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(base64.b64decode(wire["sig"]), rfc8785.dumps(wire["body"]), ec.ECDSA(hashes.SHA256()))


def test_officer_keys_roundtrip(tmp_path: Path) -> None:
    made = init_officer(tmp_path / "k", "officer-dan")
    loaded = load_officer(tmp_path / "k")
    assert loaded.officer_id == "officer-dan" and loaded.key_id == made.key_id
    assert (tmp_path / "k" / "officer.key").stat().st_mode & 0o777 == 0o600
    from agent.core.errors import SigningError

    with pytest.raises(SigningError, match="already exists"):
        init_officer(tmp_path / "k", "officer-dan")
    with pytest.raises(SigningError, match="officer id"):
        init_officer(tmp_path / "k2", "bad/id")


def test_a_wall_clock_step_cannot_revive_a_used_command(trust_dir: Path, replay: ReplayCache, alice: OfficerKey,
                                                        manual_clock: ManualClock) -> None:
    """Before: the nonce was pruned by the wall clock (stepped forward), then the clock stepped back."""
    v = CommandVerifier(DEVICE, TrustStore(trust_dir), replay, manual_clock)
    wire = raw(signed(alice, manual_clock))
    v.verify(wire)
    manual_clock.wall += 3600 * 10**9  # the wall clock jumps an hour ahead; monotonic time does not move
    replay.prune(manual_clock.mono_ns())
    manual_clock.wall -= 3600 * 10**9  # ... and back
    assert code_of(v, wire) == "replay"
    manual_clock.advance(400)  # now the command's lifetime has really passed
    replay.prune(manual_clock.mono_ns(), manual_clock.wall_ns() // 1_000_000)
    assert len(replay) == 0 and code_of(v, wire) == "expired"


def test_trust_store_reloads_on_content_change(trust_dir: Path, alice: OfficerKey, tmp_path: Path) -> None:
    """Before: only a change of the folder's mtime reloaded it; edits in place were ignored."""
    import os

    store = TrustStore(trust_dir)
    assert store.lookup(alice.key_id) is not None
    stamp = trust_dir.stat().st_mtime_ns
    perms = trust_dir / "permissions.json"
    perms.write_text(json.dumps({"*": ["status"]}))
    os.utime(trust_dir, ns=(stamp, stamp))
    officer = store.lookup(alice.key_id)
    assert officer is not None and officer.commands == frozenset({"status"})
    mallory = init_officer(tmp_path / "mallory", "officer-alice")
    pem = next(trust_dir.glob("*.pem"))
    pem.write_bytes(mallory.cert.public_bytes(serialization.Encoding.PEM))  # overwritten in place
    os.utime(trust_dir, ns=(stamp, stamp))
    assert store.lookup(alice.key_id) is None and store.lookup(mallory.key_id) is not None

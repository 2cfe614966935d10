"""Fuzz the envelope parser: whatever arrives, the answer is a CommandRejected with a known code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.clock import ManualClock
from agent.customs.keys import init_officer
from agent.signing.keys import DeviceIdentity
from agent.uplink.command_controller import CommandController
from agent.wire.commands import CommandRejected, CommandVerifier, ReplayCache, TrustStore, sign_command

DEVICE = "test-device"
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.text(
    max_size=20)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("fuzz")
    alice = init_officer(tmp / "alice", "officer-alice")
    trust = tmp / "trust"
    trust.mkdir()
    (trust / "a.pem").write_bytes(alice.cert.public_bytes(serialization.Encoding.PEM))
    clock = ManualClock()
    import time

    clock.wall = time.time_ns()
    replay = ReplayCache(tmp / "replay.sqlite")
    verifier = CommandVerifier(DEVICE, TrustStore(trust), replay, clock)
    yield alice, verifier, clock
    replay.close()


def assert_clean_rejection(verifier: CommandVerifier, payload: bytes) -> None:
    try:
        verifier.verify(payload)
    except CommandRejected as exc:
        assert exc.code in CommandRejected.CODES and exc.detail
    # acceptance is possible only for a genuinely signed command, which these inputs are not
    else:
        raise AssertionError(f"accepted fuzz input {payload[:80]!r}")


@FUZZ
@given(payload=st.binary(max_size=600))
def test_random_bytes(setup: Any, payload: bytes) -> None:
    assert_clean_rejection(setup[1], payload)


@FUZZ
@given(obj=json_values)
def test_random_json(setup: Any, obj: Any) -> None:
    assert_clean_rejection(setup[1], json.dumps(obj).encode())


FIELDS = ["typ", "command", "args", "device", "officer", "issued_ms", "expires_ms", "nonce"]


@FUZZ
@given(data=st.data())
def test_mutated_valid_envelopes(setup: Any, data: st.DataObject) -> None:
    """Start from a correctly signed command and change, drop or add one thing."""
    alice, verifier, clock = setup
    wire = sign_command(alice.private_key, officer=alice.officer_id, device=DEVICE, command="status", args={},
                        now_ms=clock.wall_ns() // 1_000_000)
    where = data.draw(st.sampled_from(["body", "top", "drop_body", "drop_top", "sig", "key_id"]))
    if where == "body":
        wire["body"][data.draw(st.sampled_from([*FIELDS, "zz"]))] = data.draw(json_values)
    elif where == "top":
        wire[data.draw(st.sampled_from(["alg", "sig", "key_id", "body", "x"]))] = data.draw(json_values)
    elif where == "drop_body":
        del wire["body"][data.draw(st.sampled_from(FIELDS))]
    elif where == "drop_top":
        del wire[data.draw(st.sampled_from(["alg", "sig", "key_id", "body"]))]
    elif where == "sig":
        wire["sig"] = data.draw(st.text(alphabet="ABCDEFabcdef0123456789+/=", max_size=100))
    else:
        wire["key_id"] = data.draw(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
    payload = json.dumps(wire).encode()
    try:
        verifier.verify(payload)
    except CommandRejected as exc:
        assert exc.code in CommandRejected.CODES
    # a mutation that happens to leave a valid command (e.g. same value) is fine: accepted once


@FUZZ
@given(payload=st.binary(max_size=300) | json_values.map(lambda o: json.dumps(o).encode()))
def test_controller_never_raises(setup: Any, identity: DeviceIdentity, payload: bytes) -> None:
    _alice, verifier, clock = setup
    sent: list[Any] = []
    ctl = CommandController(DEVICE, verifier, identity, clock, lambda *a: sent.append(a), {})
    body = ctl.handle(payload, "officer/officer-alice/reply/x", b"c")
    assert body["ok"] is False and body["error"]["code"] in CommandRejected.CODES
    assert len(sent) == 1


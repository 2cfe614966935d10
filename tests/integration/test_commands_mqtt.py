"""Signed commands over a real Mosquitto (mutual TLS, per-identity ACLs)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core.errors import CommandError, VerificationError
from agent.customs import cmd_cmd
from agent.customs.cmd_cmd import CommandRefused
from agent.wire.commands import canonical, sign_command
from tests.support.command_stack import DEVICE, SITE, Stack, build_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = build_stack(tmp_path_factory.mktemp("commands"))
    yield s
    s.close()


def refusal(excinfo: pytest.ExceptionInfo[CommandError]) -> str:
    assert isinstance(excinfo.value, CommandRefused)
    return excinfo.value.code


def test_trusted_officer_commands(stack: Stack) -> None:
    alice = stack.officer("officer-alice")
    status = alice.request(SITE, DEVICE, "status")
    assert status["ok"] and status["result"]["frames_read"] >= 0 and status["officer"] == "officer-alice"
    assert alice.request(SITE, DEVICE, "selftest")["result"] == {"camera": "ok"}
    snap = alice.request(SITE, DEVICE, "snapshot")["result"]["seq"]
    mark = alice.request(SITE, DEVICE, "mark", {"note": "seal 0042 checked"})["result"]
    rec_path = next((stack.vault.path / "items").glob(f"*/{mark['seq']:012d}.mark.rec"))
    record = json.loads(rec_path.read_text().splitlines()[0])
    assert record["extra"]["note"] == "seal 0042 checked" and record["extra"]["officer"] == "officer-alice"
    assert mark["seq"] > snap


def test_officer_without_trusted_key_cannot_command(stack: Stack) -> None:
    """The broker lets officer-mallory publish on the command topic; the device still refuses him."""
    mallory = stack.officer("officer-mallory")
    # the device cannot verify his command, so its signed refusal names no nonce: his client says so and
    # shows the device's reason, but never takes it as the answer to a command (a forged one could claim any)
    with pytest.raises(VerificationError, match=r"names no nonce.*untrusted"):
        mallory.request(SITE, DEVICE, "snapshot")
    # nor can he borrow alice's name: the key decides who he is
    mallory.officer = type(mallory.officer)("officer-alice", mallory.officer.private_key, mallory.officer.cert)
    with pytest.raises(VerificationError, match=r"names no nonce.*untrusted"):
        mallory.request(SITE, DEVICE, "mark", {"note": "forged"})


def test_replay_expired_malformed_unknown_get_error_replies(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    alice = stack.officer("officer-alice")
    key = stack.officer_keys["officer-alice"].private_key
    now_ms = alice.clock.wall_ns() // 1_000_000
    first = canonical(sign_command(key, officer="officer-alice", device=DEVICE, command="status", args={},
                                   now_ms=now_ms))
    assert alice.wait(alice.send_raw(SITE, DEVICE, first), DEVICE, "status")[0]["ok"]
    expired = canonical(sign_command(key, officer="officer-alice", device=DEVICE, command="status", args={},
                                     now_ms=now_ms - 600_000, ttl_s=60))
    unknown = canonical(sign_command(key, officer="officer-alice", device=DEVICE, command="reboot", args={},
                                     now_ms=now_ms))
    wrong_args = canonical(sign_command(key, officer="officer-alice", device=DEVICE, command="mark",
                                        args={"note": 5}, now_ms=now_ms))
    cases = {"replay": first, "expired": expired, "malformed": b"\x00{not json", "unknown_command": unknown,
             "unsigned": json.dumps({"body": {"command": "status"}}).encode(), "bad_args": wrong_args}
    pending = {code: alice.send_raw(SITE, DEVICE, payload) for code, payload in cases.items()}
    for code, p in pending.items():
        with pytest.raises(CommandError) as info:
            alice.wait(p, DEVICE, code)
        assert refusal(info) == code
    assert alice.request(SITE, DEVICE, "status")["ok"]  # the device is still there
    for code in cases:
        assert f"command rejected: {code}" in caplog.text


def test_cmd_cli_with_site_discovery(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    cert = stack.broker.pki.client("officer-alice")  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(prog="evidence-officer")
    cmd_cmd.register(parser.add_subparsers(dest="area", required=True))
    base = [DEVICE, "--broker", stack.broker.url, "--keys", str(Path(stack.root / "officers" / "officer-alice")),
            "--cafile", str(cert.ca), "--cert", str(cert.cert), "--key", str(cert.key),
            "--device-ca", str(stack.device_ca), "--json"]
    args = parser.parse_args(["cmd", *base, "status"])  # no --site: read from retained availability
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["device"] == DEVICE
    args = parser.parse_args(["cmd", *base, "mark", "--site", SITE, "--note", "from the CLI"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["result"]["seq"] >= 0

"""Commands fail closed, through a real device (`evidence-agent run --config`) on the broker-setup broker.

Attacks, each tried with the real processes:

* a trusted officer who is not listed in ``permissions.json`` sends a command (before: every command ran);
* a device with no ``permissions.json`` at all (before: every trusted key could send everything);
* a forged, unverifiable command that *claims* the nonce of someone else's command: the device's signed error
  reply must not repeat that nonce (before: it copied it into its signed reply);
* the officer's ``evidence-officer cmd`` must refuse a device-signed reply whose nonce is missing or is not the
  one it sent (before: a reply with no nonce was accepted as the answer).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.hostsetup.provision import to_toml
from agent.signing.keys import load_identity
from agent.wire.mqtt import Inbound
from agent.wire.replies import REPLY_TYP, sign_object, verify_device_object
from tests.support.fleet import ENV, Fleet, officer_cli
from tests.support.helpers import REPO

DEVICE = "cam-good"


@pytest.fixture(scope="module")
def officer_home(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("officer") / "keys"
    assert officer_cli("keys", "init", "--officer-id", "officer-alice", "--dir", str(home)).returncode == 0
    shutil.copy(fleet.ca, home / "device-ca.pem")
    return home


@pytest.fixture(scope="module")
def device(fleet: Fleet, officer_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The real agent for cam-good, trusting officer-alice's key; yields its officer trust folder."""
    root = tmp_path_factory.mktemp("device")
    trust = root / "officers"
    trust.mkdir()
    shutil.copy(officer_home / "officer.pem", trust / "officer-alice.pem")
    key_dir = fleet.key_dir(DEVICE)
    cert, key = fleet.cert_files(DEVICE)
    cfg = {
        "device": {"id": DEVICE, "site_id": "site-1"},
        "identity": {"key_dir": str(key_dir)},
        "vault": {"path": str(root / "vault")},
        "capture": {"backend": "synthetic", "width": 160, "height": 120, "fps": 5, "still_interval_s": 3600},
        "gps": {"source": "simulated"},
        "time": {"chrony": False},
        "video": {"enabled": False},
        "anchor": {"enabled": False},
        "uplink": {"enabled": True, "outbox_path": str(root / "outbox.sqlite"), "require_subscriber": False,
                   "mqtt": {"broker": fleet.url, "client_id": DEVICE, "reconnect_min_s": 1, "reconnect_max_s": 2,
                            "tls": {"ca_file": str(fleet.ca), "cert_file": str(cert), "key_file": str(key)}},
                   "commands": {"trust_dir": str(trust)}},
    }
    (root / "agent.toml").write_text(to_toml(cfg))
    log = (root / "agent.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "agent.device.cli", "run", "--config", str(root / "agent.toml")],
                            cwd=REPO, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        fleet.wait_client(DEVICE, timeout=60)
        yield trust
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _cmd(fleet: Fleet, home: Path, command: str = "status") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.customs.cli", "cmd", DEVICE, command, "--broker", fleet.url,
                           "--site", "site-1", "--keys", str(home), *fleet.tls_args("officer-alice"),
                           "--timeout", "20"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=90)


def _permissions(trust: Path, grants: dict[str, list[str]] | None) -> None:
    path = trust / "permissions.json"
    if grants is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(json.dumps(grants))


def test_an_officer_not_listed_in_permissions_gets_nothing(fleet: Fleet, officer_home: Path, device: Path) -> None:
    _permissions(device, {"officer-bob": ["status", "snapshot"]})
    res = _cmd(fleet, officer_home)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "unauthorized" in res.stderr and "permissions.json" in res.stderr, res.stderr


def test_a_device_without_permissions_json_grants_nothing(fleet: Fleet, officer_home: Path, device: Path) -> None:
    _permissions(device, None)
    res = _cmd(fleet, officer_home)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "unauthorized" in res.stderr and "no permissions.json" in res.stderr, res.stderr


def test_listed_commands_only(fleet: Fleet, officer_home: Path, device: Path) -> None:
    _permissions(device, {"officer-alice": ["status"]})
    ok = _cmd(fleet, officer_home, "status")
    assert ok.returncode == 0 and "verified device signature" in ok.stdout, ok.stdout + ok.stderr
    refused = _cmd(fleet, officer_home, "selftest")
    assert refused.returncode == 1 and "unauthorized" in refused.stderr, refused.stderr


def test_the_device_never_signs_a_nonce_it_could_not_verify(fleet: Fleet, device: Path) -> None:
    """A forged command claims the nonce of a victim's command; the signed error must not carry it."""
    _permissions(device, {"officer-alice": ["status"]})
    victim_nonce = secrets.token_hex(16)
    forged = {"alg": "ES256", "key_id": "ab" * 32, "sig": "AAAA",
              "body": {"typ": "evidence-command/1", "command": "status", "args": {}, "device": DEVICE,
                       "officer": "officer-alice", "issued_ms": 1, "expires_ms": 2, "nonce": victim_nonce}}
    link = fleet.link("officer-alice", client_id=f"alice-raw-{secrets.token_hex(3)}")
    got: list[Inbound] = []
    done = threading.Event()
    topic = f"officer/officer-alice/reply/{DEVICE}/raw{secrets.token_hex(3)}"

    def on(msg: Inbound) -> None:
        got.append(msg)
        done.set()

    try:
        link.subscribe_wait(topic, on, qos=1)
        link.publish(f"evidence/site-1/{DEVICE}/cmd", json.dumps(forged).encode(), qos=1, response_topic=topic,
                     correlation=victim_nonce.encode())
        assert done.wait(30), "the device did not answer"
    finally:
        link.close(offline=False)
    body, _leaf = verify_device_object(json.loads(got[0].payload), typ=REPLY_TYP, device=DEVICE,
                                       trusted_cas=None)
    assert body["ok"] is False and body["error"]["code"] == "untrusted", body
    assert body["nonce"] is None, body  # before: the victim's nonce, signed by the device


# --------------------------------------------------------------------------- the officer client


def _responder(fleet: Fleet, reply: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[], None]:
    """Answer commands to cam-victim with a reply signed by cam-victim's genuine key (what the device would sign
    for a forged command that claimed a nonce, or none)."""
    signer = load_identity(fleet.key_dir("cam-victim"))
    link = fleet.link("cam-victim", client_id=f"cam-victim-responder-{secrets.token_hex(3)}")

    def answer(msg: Inbound) -> None:
        body = json.loads(msg.payload)["body"]
        link.reply(msg, sign_object(signer, reply(body)))

    link.subscribe_wait("evidence/site-1/cam-victim/cmd", answer)
    return lambda: link.close(offline=False)


def _error_reply(nonce: str | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def make(body: dict[str, Any]) -> dict[str, Any]:
        return {"typ": REPLY_TYP, "device": "cam-victim", "ok": False, "command": body["command"], "nonce": nonce,
                "officer": body["officer"], "time_ms": body["issued_ms"], "result": None,
                "error": {"code": "bad_signature", "message": "signature does not match the body"}}
    return make


def _victim_cmd(fleet: Fleet, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.customs.cli", "cmd", "cam-victim", "status", "--broker",
                           fleet.url, "--site", "site-1", "--keys", str(home), *fleet.tls_args("officer-alice"),
                           "--timeout", "20"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize("nonce", [None, "0" * 32], ids=["missing", "another-commands"])
def test_the_officer_refuses_a_reply_without_its_nonce(fleet: Fleet, officer_home: Path, nonce: str | None) -> None:
    stop = _responder(fleet, _error_reply(nonce))
    try:
        res = _victim_cmd(fleet, officer_home)
    finally:
        stop()
    assert res.returncode == 1, res.stdout + res.stderr
    assert "reply failed verification" in res.stderr and "nonce" in res.stderr, res.stderr
    assert "refused status: bad_signature" not in res.stderr  # not taken as the device's answer


def test_the_officer_accepts_an_error_reply_naming_its_nonce(fleet: Fleet, officer_home: Path) -> None:
    def same(body: dict[str, Any]) -> dict[str, Any]:
        return _error_reply(body["nonce"])(body)

    stop = _responder(fleet, same)
    try:
        res = _victim_cmd(fleet, officer_home)
    finally:
        stop()
    assert res.returncode == 1 and "cam-victim refused status: bad_signature" in res.stderr, res.stderr


# --------------------------------------------------------------------------- replay store: both clocks


def test_a_pruned_nonce_does_not_revive_its_command_when_the_wall_clock_steps_back(tmp_path: Path) -> None:
    """The command's lifetime passed on the monotonic clock (its nonce may be pruned), then the wall clock was
    stepped back (NTP/GPS correction) into the lifetime: the used command must stay used. The device's real
    clocks cannot be stepped here, so this drives the device's own verifier and SQLite replay store with a
    manual clock (before: the nonce was pruned by the monotonic clock alone and the command ran again)."""
    from cryptography.hazmat.primitives import serialization

    from agent.core.clock import ManualClock
    from agent.customs.keys import init_officer
    from agent.wire.commands import CommandRejected, CommandVerifier, ReplayCache, TrustStore, sign_command

    clock = ManualClock(wall=time.time_ns())
    alice = init_officer(tmp_path / "alice", "officer-alice")
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "officer-alice.pem").write_bytes(alice.cert.public_bytes(serialization.Encoding.PEM))
    (trust / "permissions.json").write_text('{"officer-alice": ["status"]}')
    replay = ReplayCache(tmp_path / "replay.sqlite", skew_ms=30_000)
    verifier = CommandVerifier("dev-1", TrustStore(trust), replay, clock, max_ttl_s=300, skew_s=30)
    wire = json.dumps(sign_command(alice.private_key, officer="officer-alice", device="dev-1", command="status",
                                   args={}, now_ms=clock.wall_ns() // 1_000_000, ttl_s=60)).encode()
    verifier.verify(wire)
    clock.advance(600)  # both clocks: the command expired long ago
    replay.prune(clock.mono_ns(), clock.wall_ns() // 1_000_000)
    clock.wall -= 600 * 10**9  # the wall clock is stepped back into the command's lifetime
    with pytest.raises(CommandRejected) as info:
        verifier.verify(wire)
    assert info.value.code == "replay"
    clock.wall += 600 * 10**9  # once both clocks are past the expiry the nonce goes (the store stays bounded)
    replay.prune(clock.mono_ns(), clock.wall_ns() // 1_000_000)
    assert len(replay) == 0
    replay.close()

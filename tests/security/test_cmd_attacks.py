"""Forged command replies against the real `evidence-officer cmd` process, on the broker-setup broker.

Before: without --device-ca a reply signed by any certificate naming the device was accepted, and the ACL let
every client write ``officer/+/reply/#``. Now the ACL lets only the addressed device write its reply slot
(test_broker_acl), the officer tool takes the device CA from ``<keys>/device-ca.pem``, and a reply must be
signed by the device it was sent to.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.signing.keys import load_identity
from agent.wire.mqtt import Inbound
from agent.wire.replies import REPLY_TYP, sign_object
from tests.support.fleet import ENV, Fleet, officer_cli
from tests.support.helpers import REPO


def _responder(fleet: Fleet, device: str, signer_dir: Path) -> Callable[[], None]:
    """Answer commands to ``device`` (its broker identity) with a reply signed by ``signer_dir``'s key."""
    signer = load_identity(signer_dir)
    link = fleet.link(device, client_id=f"{device}-responder")

    def answer(msg: Inbound) -> None:
        body = json.loads(msg.payload)["body"]
        reply = {"typ": REPLY_TYP, "device": device, "ok": True, "command": body["command"],
                 "nonce": body["nonce"], "officer": body["officer"], "time_ms": body["issued_ms"],
                 "result": {"state": "fine"}, "error": None}
        link.reply(msg, sign_object(signer, reply))

    link.subscribe_wait(f"evidence/site-1/{device}/cmd", answer)
    return lambda: link.close(offline=False)


@pytest.fixture(scope="module")
def officer_home(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("officer") / "keys"
    assert officer_cli("keys", "init", "--officer-id", "officer-alice", "--dir", str(home)).returncode == 0
    shutil.copy(fleet.ca, home / "device-ca.pem")  # the officer's configured device CA
    return home


def _cmd(fleet: Fleet, home: Path, device: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.customs.cli", "cmd", device, "status", "--broker", fleet.url,
                           "--site", "site-1", "--keys", str(home), *fleet.tls_args("officer-alice"),
                           "--timeout", "10"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)


def test_a_reply_signed_by_the_addressed_device_is_accepted(fleet: Fleet, officer_home: Path) -> None:
    stop = _responder(fleet, "cam-victim", fleet.key_dir("cam-victim"))
    try:
        res = _cmd(fleet, officer_home, "cam-victim")
    finally:
        stop()
    assert res.returncode == 0 and "verified device signature" in res.stdout, res.stdout + res.stderr
    assert "warning: no --device-ca" not in res.stderr


def test_a_reply_signed_by_another_device_is_refused(fleet: Fleet, officer_home: Path) -> None:
    """cam-victim's broker credential answers, but the reply is signed with cam-evil's genuine fleet key."""
    stop = _responder(fleet, "cam-victim", fleet.key_dir("cam-evil"))
    try:
        res = _cmd(fleet, officer_home, "cam-victim")
    finally:
        stop()
    assert res.returncode == 1 and "certificate is for 'cam-evil', not 'cam-victim'" in res.stderr, res.stderr


def test_a_reply_from_outside_the_fleet_ca_is_refused(fleet: Fleet, officer_home: Path, tmp_path: Path) -> None:
    from agent.signing.keys import init_identity

    init_identity(tmp_path / "rogue", "cam-victim", "Rogue")  # right CN, own development CA
    stop = _responder(fleet, "cam-victim", tmp_path / "rogue")
    try:
        res = _cmd(fleet, officer_home, "cam-victim")
    finally:
        stop()
    assert res.returncode == 1 and "trusted CA" in res.stderr, res.stderr

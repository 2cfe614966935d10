"""Device side of an inspection: signed start/end/decision/report commands and the case stamp on items."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from agent.core.clock import ManualClock
from agent.customs.keys import OfficerKey, init_officer
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import DeviceIdentity
from agent.signing.verify import check
from agent.uplink.command_controller import CommandController, inspection_handlers
from agent.wire.commands import CommandVerifier, ReplayCache, TrustStore, sign_command
from tests.support.helpers import moment

DEVICE = "test-device"
TOPIC = "officer/officer-alice/reply/x1"
START = {"case": "C-2026/0042", "enterprise": "Green Fields Ltd", "officers": ["officer-alice"],
         "planned_minutes": 25}


@pytest.fixture
def alice(tmp_path: Path) -> OfficerKey:
    return init_officer(tmp_path / "alice", "officer-alice")


@pytest.fixture
def controller(tmp_path: Path, alice: OfficerKey, identity: DeviceIdentity, manual_clock: ManualClock,
               sealer: Sealer) -> Iterator[CommandController]:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "a.pem").write_bytes(alice.cert.public_bytes(serialization.Encoding.PEM))
    (trust / "permissions.json").write_text('{"officer-alice": ["*"]}')
    replay = ReplayCache(tmp_path / "replay.sqlite")
    handlers = inspection_handlers(sealer.seal, lambda: moment(manual_clock), lambda: sealer.inspection)
    yield CommandController(DEVICE, CommandVerifier(DEVICE, TrustStore(trust), replay, manual_clock), identity,
                            manual_clock, lambda *_: None, handlers)
    replay.close()


def send(controller: CommandController, alice: OfficerKey, clock: ManualClock, command: str,
         args: dict[str, Any]) -> dict[str, Any]:
    clock.advance(0.01)
    wire = sign_command(alice.private_key, officer=alice.officer_id, device=DEVICE, command=command, args=args,
                        now_ms=clock.wall_ns() // 1_000_000)
    return controller.handle(json.dumps(wire).encode(), TOPIC, b"c")


def test_items_between_start_and_end_carry_the_case(controller: CommandController, alice: OfficerKey,
                                                    manual_clock: ManualClock, sealer: Sealer,
                                                    tmp_path: Path) -> None:
    sealer.start(moment(manual_clock))
    start = send(controller, alice, manual_clock, "inspection.start", START)
    assert start["ok"], start
    still = sealer.seal("still", moment(manual_clock), media=b"jpeg", media_type="image/jpeg", ext="jpg",
                        extra={"label": "identity_document"})
    assert still.record["extra"]["inspection"] == {"case": START["case"], "start_seq": start["result"]["seq"]}
    decision = send(controller, alice, manual_clock, "inspection.decision",
                    {"case": START["case"], "decision": "shift_to_onsite", "reason": "camera covered twice"})
    assert decision["ok"]
    end = send(controller, alice, manual_clock, "inspection.end", {"case": START["case"]})
    assert end["ok"] and end["result"]["start_seq"] == start["result"]["seq"]
    after = sealer.seal("mark", moment(manual_clock), extra={"note": "after"})
    assert "inspection" not in after.record["extra"]
    rep = send(controller, alice, manual_clock, "inspection.report",
               {"case": START["case"], "sha256": "ab" * 32, "size": 1234, "items": 5})
    assert rep["ok"]
    kinds = [json.loads(p.read_bytes().split(b"\n")[0])["kind"]
             for p in sorted((tmp_path / "vault" / "items").rglob("*.rec"))]
    assert kinds == ["restart", "inspection_start", "still", "decision", "inspection_end", "mark", "report"]
    report = check(tmp_path / "vault")
    assert report.ok, report.problems


def test_refusals(controller: CommandController, alice: OfficerKey, manual_clock: ManualClock,
                  sealer: Sealer) -> None:
    sealer.start(moment(manual_clock))
    assert send(controller, alice, manual_clock, "inspection.end", {"case": "C-1"})["error"]["code"] == "conflict"
    bad = [{**START, "case": "../etc"}, {**START, "planned_minutes": 0}, {**START, "extra": 1},
           {**START, "officers": ["x y"]}]
    for args in bad:
        assert send(controller, alice, manual_clock, "inspection.start", args)["error"]["code"] == "bad_args"
    first = send(controller, alice, manual_clock, "inspection.start", START)
    again = send(controller, alice, manual_clock, "inspection.start", START)  # a retry after a reconnect
    assert again["ok"] and again["result"]["seq"] == first["result"]["seq"] and again["result"]["already_open"]
    other = send(controller, alice, manual_clock, "inspection.start", {**START, "case": "C-9"})
    assert other["error"]["code"] == "conflict"
    wrong = send(controller, alice, manual_clock, "inspection.decision",
                 {"case": "C-9", "decision": "continue", "reason": "fine"})
    assert wrong["error"]["code"] == "conflict"
    assert send(controller, alice, manual_clock, "inspection.decision",
                {"case": START["case"], "decision": "maybe", "reason": "x"})["error"]["code"] == "bad_args"


def test_open_inspection_survives_a_restart(tmp_path: Path, identity: DeviceIdentity,
                                            manual_clock: ManualClock) -> None:
    vault = Vault(tmp_path / "v2")
    sealer = Sealer(vault, identity, device_id=DEVICE, site_id="s")
    sealer.start(moment(manual_clock))
    sealer.seal("inspection_start", moment(manual_clock), extra={"case": "C-7"})
    sealer.seal("still", moment(manual_clock), media=b"x", media_type="image/jpeg", ext="jpg")
    vault.close()
    vault = Vault(tmp_path / "v2")
    again = Sealer(vault, identity, device_id=DEVICE, site_id="s")
    assert again.inspection == {"case": "C-7", "start_seq": 1}
    restart = again.start(moment(manual_clock), reason="start")
    assert restart.record["extra"]["inspection"]["case"] == "C-7"
    again.seal("inspection_end", moment(manual_clock), extra={"case": "C-7"})
    vault.close()
    vault = Vault(tmp_path / "v2")
    assert Sealer(vault, identity, device_id=DEVICE, site_id="s").inspection is None
    vault.close()

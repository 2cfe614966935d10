"""Advance notice (``inspection.notice``) against forged, misdirected, absurd, oversized and replayed commands.

The device's real verifier, trust store, permissions.json, replay cache and sealer; the notice handler and its
board. A refused notice seals nothing and lists nothing; an accepted one is sealed with the officer's signed
command and listed as upcoming until its case starts.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from agent.core.clock import ManualClock
from agent.core.vocab import INSPECTION_NOTICE, NOTICE_COMMAND
from agent.customs.keys import OfficerKey, init_officer
from agent.device.sealer import Sealer
from agent.signing.keys import DeviceIdentity
from agent.signing.verify import check
from agent.uplink.command_controller import CommandController, inspection_handlers
from agent.uplink.notices import MAX_UPCOMING, NoticeBoard, notice_handler
from agent.wire.commands import CommandVerifier, ReplayCache, TrustStore, sign_command
from tests.support.helpers import moment

DEVICE, SITE = "test-device", "test-site"
TOPIC = "officer/officer-alice/reply/n1"


def _in(clock: ManualClock, **delta: float) -> str:
    when = dt.datetime.fromtimestamp(clock.wall_ns() / 1e9, dt.UTC) + dt.timedelta(**delta)
    return when.isoformat(timespec="seconds")


def notice(clock: ManualClock, **over: Any) -> dict[str, Any]:
    return {"case": "C-2026/0142", "site": SITE, "enterprise": "绿野农场 Green Fields Ltd",
            "scheduled": _in(clock, days=3), "planned_minutes": 25, "officers": ["officer-alice"], **over}


@pytest.fixture
def officers(tmp_path: Path) -> dict[str, OfficerKey]:
    return {n: init_officer(tmp_path / n, n) for n in ("officer-alice", "officer-carol", "officer-mallory")}


@pytest.fixture
def rig(tmp_path: Path, officers: dict[str, OfficerKey], identity: DeviceIdentity, manual_clock: ManualClock,
        sealer: Sealer) -> Iterator[dict[str, Any]]:
    trust = tmp_path / "trust"
    trust.mkdir()
    for name in ("officer-alice", "officer-carol"):  # mallory's key is not in the trust store
        (trust / f"{name}.pem").write_bytes(officers[name].cert.public_bytes(serialization.Encoding.PEM))
    (trust / "permissions.json").write_text(json.dumps({"officer-alice": ["*"], "officer-carol": ["status"]}))
    replay = ReplayCache(tmp_path / "replay.sqlite")
    board = NoticeBoard(tmp_path / "notices.json", manual_clock)
    handlers = inspection_handlers(sealer.seal, lambda: moment(manual_clock), lambda: sealer.inspection)
    handlers[NOTICE_COMMAND] = notice_handler(sealer.seal, lambda: moment(manual_clock), board, SITE)
    controller = CommandController(DEVICE, CommandVerifier(DEVICE, TrustStore(trust), replay, manual_clock),
                                   identity, manual_clock, lambda *_: None, handlers)
    sealer.start(moment(manual_clock))
    yield {"controller": controller, "board": board, "sealer": sealer}
    replay.close()


def wire(officer: OfficerKey, clock: ManualClock, args: dict[str, Any], *, device: str = DEVICE,
         command: str = NOTICE_COMMAND) -> dict[str, Any]:
    clock.advance(0.01)
    return sign_command(officer.private_key, officer=officer.officer_id, device=device, command=command, args=args,
                        now_ms=clock.wall_ns() // 1_000_000)


def send(rig: dict[str, Any], envelope: dict[str, Any] | bytes) -> dict[str, Any]:
    payload = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    reply: dict[str, Any] = rig["controller"].handle(payload, TOPIC, b"c")
    return reply


def refused(rig: dict[str, Any], envelope: dict[str, Any] | bytes, code: str, words: str = "") -> None:
    before = rig["sealer"].next_seq
    reply = send(rig, envelope)
    assert not reply["ok"] and reply["error"]["code"] == code, reply
    assert words in reply["error"]["message"], reply["error"]
    assert rig["sealer"].next_seq == before and rig["board"].upcoming() == []


def test_a_signed_notice_is_sealed_listed_and_unlisted_when_its_case_starts(
        rig: dict[str, Any], officers: dict[str, OfficerKey], manual_clock: ManualClock, tmp_path: Path) -> None:
    args = notice(manual_clock, scheduled=_in(manual_clock, days=3, hours=8)[:19] + "+08:00", note="bring the permits")
    env = wire(officers["officer-alice"], manual_clock, args)
    reply = send(rig, env)
    assert reply["ok"], reply
    res = reply["result"]
    assert res["scheduled"].endswith("Z") and res["upcoming"] == 1
    rec = json.loads((next((tmp_path / "vault" / "items").rglob(f"{res['seq']:012d}.event.rec"))).read_bytes()
                     .split(b"\n")[0])
    extra = rec["extra"]
    assert extra["type"] == INSPECTION_NOTICE and extra["case"] == "C-2026/0142"
    assert extra["note"] == "bring the permits"
    assert extra["command"]["body"]["nonce"] == env["body"]["nonce"] and extra["officer"] == "officer-alice"
    assert [n["case"] for n in rig["board"].status()["upcoming_inspections"]] == ["C-2026/0142"]
    # the list survives a restart of the agent
    assert NoticeBoard(tmp_path / "notices.json", manual_clock).upcoming()[0]["seq"] == res["seq"]
    start = wire(officers["officer-alice"], manual_clock, {"case": "C-2026/0142", "enterprise": "Green Fields"},
                 command="inspection.start")
    assert send(rig, start)["ok"]
    report = check(tmp_path / "vault")
    assert report.ok, report.problems


def test_forged_and_unsigned_notices_are_refused(rig: dict[str, Any], officers: dict[str, OfficerKey],
                                                 manual_clock: ManualClock) -> None:
    env = wire(officers["officer-alice"], manual_clock, notice(manual_clock))
    refused(rig, {k: v for k, v in env.items() if k not in ("sig", "key_id")}, "unsigned")
    refused(rig, wire(officers["officer-mallory"], manual_clock, notice(manual_clock)), "untrusted")
    tampered = json.loads(json.dumps(env))
    tampered["body"]["args"]["scheduled"] = _in(manual_clock, days=1)
    refused(rig, tampered, "bad_signature")
    mallory_as_alice = wire(officers["officer-mallory"], manual_clock, notice(manual_clock))
    mallory_as_alice["key_id"] = env["key_id"]
    refused(rig, mallory_as_alice, "bad_signature")
    bad_sig = dict(env, sig=base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode())
    refused(rig, bad_sig, "bad_signature")
    # a trusted officer whose permissions.json grants only "status"
    refused(rig, wire(officers["officer-carol"], manual_clock, notice(manual_clock)), "unauthorized",
            "may not send inspection.notice")


def test_a_notice_for_another_device_or_site_is_refused(rig: dict[str, Any], officers: dict[str, OfficerKey],
                                                         manual_clock: ManualClock) -> None:
    alice = officers["officer-alice"]
    refused(rig, wire(alice, manual_clock, notice(manual_clock), device="other-device"), "wrong_device")
    refused(rig, wire(alice, manual_clock, notice(manual_clock, site="other-site")), "wrong_device",
            "this device is at 'test-site'")


@pytest.mark.parametrize(("scheduled", "words"), [
    ("past", "is in the past"), ("now", "is in the past"), ("366d", "more than 365 days ahead"),
    ("9999-12-31T23:59:59+00:00", "more than 365 days ahead"), ("naive", "no UTC offset"),
    ("2026-13-45T99:00:00+00:00", "not an ISO 8601 time"), ("next tuesday at nine", "not an ISO 8601 time"),
])
def test_absurd_schedule_times_are_refused(rig: dict[str, Any], officers: dict[str, OfficerKey],
                                           manual_clock: ManualClock, scheduled: str, words: str) -> None:
    value = {"past": _in(manual_clock, minutes=-5), "now": _in(manual_clock), "366d": _in(manual_clock, days=366),
             "naive": _in(manual_clock, days=2)[:19]}.get(scheduled, scheduled)
    refused(rig, wire(officers["officer-alice"], manual_clock, notice(manual_clock, scheduled=value)), "bad_args",
            words)


@pytest.mark.parametrize("over", [
    {"enterprise": "E" * 201}, {"enterprise": ""}, {"note": "n" * 2001}, {"case": "../../etc/passwd"},
    {"case": "C" * 65}, {"officers": [f"officer-{i}" for i in range(17)]}, {"officers": ["<script>"]},
    {"registered_site": "r" * 201}, {"planned_minutes": 24 * 60 + 1}, {"planned_minutes": 0},
    {"scheduled": "2026-12-10T09:00:00+08:00" + " " * 30}, {"site": "a/b"}, {"extra": "field"},
    {"planned_minutes": "25"}, {"scheduled": 1796000000},
])
def test_oversized_or_malformed_fields_are_refused(rig: dict[str, Any], officers: dict[str, OfficerKey],
                                                   manual_clock: ManualClock, over: dict[str, Any]) -> None:
    refused(rig, wire(officers["officer-alice"], manual_clock, notice(manual_clock, **over)), "bad_args")


def test_an_oversized_envelope_is_refused_before_parsing(rig: dict[str, Any], officers: dict[str, OfficerKey],
                                                         manual_clock: ManualClock) -> None:
    env = wire(officers["officer-alice"], manual_clock, notice(manual_clock, note="n" * 2000))
    env["body"]["args"]["pad"] = "x" * 20_000
    refused(rig, env, "too_large")


def test_a_replayed_notice_is_refused(rig: dict[str, Any], officers: dict[str, OfficerKey],
                                      manual_clock: ManualClock) -> None:
    env = wire(officers["officer-alice"], manual_clock, notice(manual_clock))
    assert send(rig, env)["ok"]
    seq = rig["sealer"].next_seq
    reply = send(rig, env)
    assert not reply["ok"] and reply["error"]["code"] == "replay"
    assert rig["sealer"].next_seq == seq and len(rig["board"].upcoming()) == 1


def test_the_board_is_bounded_and_a_damaged_file_lists_nothing(tmp_path: Path, manual_clock: ManualClock,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    board = NoticeBoard(tmp_path / "notices.json", manual_clock)
    for i in range(MAX_UPCOMING):
        board.add({"case": f"C-{i}", "enterprise": "E", "scheduled": _in(manual_clock, days=1), "planned_minutes": 25})
    board.add({"case": "C-0", "enterprise": "E", "scheduled": _in(manual_clock, days=2), "planned_minutes": 25})
    with pytest.raises(Exception, match="busy"):
        board.add({"case": "C-new", "enterprise": "E", "scheduled": _in(manual_clock, days=1), "planned_minutes": 1})
    manual_clock.advance(2 * 86400)  # every notice's planned end but C-0's has passed
    assert [n["case"] for n in board.upcoming()] == ["C-0"]
    (tmp_path / "notices.json").write_text('{"not": "a list"}')
    assert NoticeBoard(tmp_path / "notices.json", manual_clock).upcoming() == []
    assert "unreadable" in caplog.text

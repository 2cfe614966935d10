"""A compromised device (a genuine fleet certificate) attacks the real `evidence-officer ingest` process.

Before the trust-boundary work each of these succeeded: media.name wrote outside --out and over another
device's files, a re-sent seq replaced the stored record, a bogus chunk marked another device's media as a
duplicate, poison messages raised in the handler (left unacknowledged, stalling the fleet), and the run
exited 0 with a report that showed nothing wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.wire.mqtt import Inbound, MqttLink
from tests.support.fleet import Fleet, agent_cli
from tests.support.hostile import Device, chunk_msgs, raw_chunk, record_msg, sidecar


def _send(link: MqttLink, msgs: list[Inbound]) -> None:
    for m in msgs:
        assert link.publish_wait(m.topic, m.payload, user_props=m.user_props, timeout=20).code < 0x80, m.topic


@pytest.fixture(scope="module")
def attacked(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """One ingest run under every attack at once; the tests below read its outcome."""
    root = tmp_path_factory.mktemp("attack")
    out = root / "out"
    evil = Device(root / "evil", "cam-evil", keys=fleet.key_dir("cam-evil"))
    victim = Device(root / "victim", "cam-victim", keys=fleet.key_dir("cam-victim"))
    ingest = fleet.ingest(out, idle=6.0)
    evil_link, victim_link = fleet.link("cam-evil"), fleet.link("cam-victim")
    try:
        # the victim records: a restart, two stills (records and media), all genuine
        stills = [os.urandom(20_000), os.urandom(30_000)]
        v_items = [victim.still(d) for d in stills]
        restart = sorted(victim.vault.path.rglob("000000000000.restart.rec"))[0].read_bytes()
        # the attacker first claims the victim's media item hash on its own topic (cross-device suppression)
        bogus = b"x" * 100  # a complete, self-consistent "media" under the victim's item hash
        _send(evil_link, [raw_chunk(evil, item=v_items[0].record_hash, sha256=hashlib.sha256(bogus).hexdigest(),
                                    size=100, data=bogus, seq=v_items[0].seq)])
        _send(victim_link, [record_msg(victim, restart)])
        for item, data in zip(v_items, stills, strict=True):
            _send(victim_link, [record_msg(victim, sidecar(item)), *chunk_msgs(victim, item, data)])
        # the attacker's own history, then every attack
        e_restart = sorted(evil.vault.path.rglob("000000000000.restart.rec"))[0].read_bytes()
        e_item = evil.still(b"evil" * 1000)
        traversal = "../../cam-victim/items/000000/000000000001.still.jpg"
        attacks = [
            record_msg(evil, e_restart),
            record_msg(evil, evil.forge(e_item, media={**e_item.record["media"], "name": traversal})),
            record_msg(evil, evil.forge(e_item, media={**e_item.record["media"], "name": str(root / "abs.jpg")})),
            record_msg(evil, sidecar(e_item)),
            record_msg(evil, evil.forge(e_item, extra={"rewritten": True})),  # fork of a delivered seq
            record_msg(evil, b"[" * 200_000),
            record_msg(evil, evil.forge(e_item, seq=1.5)),
            record_msg(evil, evil.forge(e_item, seq=2**53 - 1)),
            record_msg(evil, evil.forge(e_item, device_id="cam-victim")),  # impersonation on its own topic
            raw_chunk(evil, size=2 * 10**9, total=1),
            raw_chunk(evil, offset=2**62, size=2**63),
            raw_chunk(evil, name="n" * 5000),
            *chunk_msgs(evil, e_item, b"evil" * 1000),
        ]
        _send(evil_link, attacks)
        outcome, _ = ingest.communicate(timeout=180)
        err = (root / "ingest.log").read_text(errors="replace")
    finally:
        ingest.kill()
        evil_link.close(offline=False)
        victim_link.close(offline=False)
        evil.close()
        victim.close()
    yield {"root": root, "out": out, "rc": ingest.returncode, "report": json.loads(outcome), "stderr": err,
           "attacks": len(attacks), "stills": stills, "victim_items": v_items}


def test_nothing_is_written_outside_the_device_namespace(attacked: dict[str, object]) -> None:
    root, out = Path(str(attacked["root"])), Path(str(attacked["out"]))
    assert not (root / "abs.jpg").exists()
    victim_files = {p.relative_to(out / "cam-victim") for p in (out / "cam-victim").rglob("*") if p.is_file()}
    assert all(not str(p).startswith("..") for p in victim_files)
    assert attacked["report"]["devices"]["cam-evil"]["refusals"]["bad_media_name"] >= 3  # type: ignore[index]


def test_victim_evidence_arrives_complete_and_verifies_trusted(attacked: dict[str, object], fleet: Fleet) -> None:
    out = Path(str(attacked["out"]))
    rep = attacked["report"]["devices"]["cam-victim"]  # type: ignore[index]
    assert rep["records"] == 3 and rep["missing"] == [] and rep["incomplete"] == [] and rep["refused"] == 0
    for item, data in zip(attacked["victim_items"], attacked["stills"], strict=True):  # type: ignore[call-overload]
        assert (out / "cam-victim" / "items" / "000000" / item.record["media"]["name"]).read_bytes() == data
    res = agent_cli("verify", str(out / "cam-victim"), "--ca", str(fleet.ca), "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["trusted"] is True and "Fleet CA" in doc["issuer"], res.stdout


def test_fork_is_kept_reported_and_shown_by_verify(attacked: dict[str, object], fleet: Fleet) -> None:
    out = Path(str(attacked["out"]))
    report = attacked["report"]
    evil = report["devices"]["cam-evil"]  # type: ignore[index]
    assert evil["fork_count"] == 1 and evil["forks"][0]["seq"] == 1
    assert "cam-evil" in report["findings"] and attacked["rc"] == 1  # type: ignore[operator]
    stored = (out / "cam-evil" / "items" / "000000" / "000000000001.still.rec").read_bytes()
    assert b"rewritten" not in stored  # the first record stands
    res = agent_cli("verify", str(out / "cam-evil"), "--ca", str(fleet.ca))
    assert res.returncode == 1 and "two different records claim this sequence number" in res.stdout


def test_every_message_was_answered(attacked: dict[str, object]) -> None:
    """No message stalled: the ingest handled all of them (and exited on idle), refusals counted by reason."""
    report = attacked["report"]
    evil = report["devices"]["cam-evil"]  # type: ignore[index]
    assert {"too_deep", "bad_seq", "too_large", "bad_media_name", "wrong_device"} <= set(evil["refusals"])
    assert "internal_error" not in evil["refusals"], attacked["stderr"]
    assert report["slowest_message_ms"] > 0  # type: ignore[operator]

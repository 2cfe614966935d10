"""A compromised device joins the ingest's shared subscription group to make the fleet's evidence vanish.

Before: Mosquitto (acl_file) grants any client's subscription to ``$share/ingest/...``; it then routes a share
of every device's messages to the thief, whose read ACL drops them, and the publishers got PUBACK OK so nothing
is resent (60 of 301 records stored with 3 such subscriptions). Now the broker refuses the subscription of every
registered device and officer (the dynamic-security plugin written by ``broker-setup``), and the ingest raises a
gap the device reported delivered as a finding (``lost_after_delivery``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.wire.mqtt import MqttLink
from tests.support.fleet import Fleet
from tests.support.hostile import Device, record_msg, sidecar

RECORDS = 300  # after the restart record
THIEVES = 3
SHARE = "ingest"
IDLE = 10.0  # seconds without a message before the ingest ends its run (a loaded CI machine is slow)


@pytest.fixture(scope="module")
def share_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A broker of its own: the thieves' sessions must not outlive this module."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    f = Fleet(tmp_path_factory.mktemp("share-fleet"), ("cam-good", "cam-evil"))
    f.start()
    yield f
    f.stop()


def _status(dev: Device, last_seq: int) -> bytes:
    """What the uplink publishes once its outbox is drained (agent/uplink/service.py)."""
    return json.dumps({"device": dev.device_id, "site": "site-1", "last_sealed": {"seq": last_seq},
                       "outbox": {"pending": 0, "in_flight": 0, "rejected": 0, "delivered": last_seq + 1}}).encode()


def test_a_device_cannot_steal_from_the_ingest_group(share_fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    thieves: list[MqttLink] = []
    granted: list[list[int]] = []
    good = Device(tmp_path / "good", "cam-good", keys=share_fleet.key_dir("cam-good"))
    link = share_fleet.link("cam-good")
    ingest = None
    try:
        for i in range(THIEVES):  # in the group before the ingest (the broker keeps their sessions anyway)
            thief = share_fleet.link("cam-evil", client_id=f"thief-{i}")
            thieves.append(thief)
            granted.append(thief.subscribe_wait(f"$share/{SHARE}/evidence/+/+/record", lambda _m: None))
        restart = sorted(good.vault.path.rglob("000000000000.restart.rec"))[0].read_bytes()
        msgs = [record_msg(good, restart)] + [record_msg(good, sidecar(good.event())) for _ in range(RECORDS)]
        # everything slow is done: the ingest's --idle clock starts now
        ingest = share_fleet.ingest(out, "--share", SHARE, idle=IDLE, client_id="ingest-share")
        for m in msgs:
            assert link.publish_wait(m.topic, m.payload, timeout=20).code < 0x80
        assert link.publish_wait(f"{good.topic}/status", _status(good, RECORDS), retain=True).code < 0x80
        outcome, _ = ingest.communicate(timeout=180)
    finally:
        if ingest is not None:
            ingest.kill()
        for thief in thieves:
            thief.close(offline=False)
        link.close(offline=False)
        good.close()
    rep = json.loads(outcome)["devices"]["cam-good"]
    assert all(codes[0] >= 0x80 for codes in granted), \
        f"the broker granted a device $share: {granted}; {rep['records']} of {RECORDS + 1} stored"
    assert rep["records"] == RECORDS + 1, f"{rep['records']} of {RECORDS + 1} records stored"
    assert rep["lost_after_delivery_count"] == 0


def test_a_gap_the_device_reported_delivered_is_a_finding(share_fleet: Fleet, tmp_path: Path) -> None:
    """Whatever lost them (a thief with an unregistered certificate, a broker fault): the ingest says so."""
    out = tmp_path / "out"
    good = Device(tmp_path / "good", "cam-good", keys=share_fleet.key_dir("cam-good"))
    link = share_fleet.link("cam-good", client_id="cam-good-gap")
    ingest = None
    try:
        restart = sorted(good.vault.path.rglob("000000000000.restart.rec"))[0].read_bytes()
        msgs = [record_msg(good, restart)] + [record_msg(good, sidecar(good.event())) for _ in range(10)]
        lost = {3, 4, 10}  # "delivered" (PUBACK) but never reached the ingest
        ingest = share_fleet.ingest(out, idle=IDLE, client_id="ingest-gap")
        for seq, m in enumerate(msgs):
            if seq not in lost:
                assert link.publish_wait(m.topic, m.payload, timeout=20).code < 0x80
        assert link.publish_wait(f"{good.topic}/status", _status(good, 10), retain=True).code < 0x80
        outcome, _ = ingest.communicate(timeout=120)
    finally:
        if ingest is not None:
            ingest.kill()
        link.close(offline=False)
        good.close()
    assert ingest is not None
    report = json.loads(outcome)
    rep = report["devices"]["cam-good"]
    assert ingest.returncode == 1 and "cam-good" in report["findings"]
    assert rep["lost_after_delivery"] == sorted(lost) and rep["lost_after_delivery_count"] == len(lost)

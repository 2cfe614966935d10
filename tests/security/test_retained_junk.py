"""A compromised device leaves retained messages where the ACL lets it publish but nothing should stay.

Mosquitto 2.0 has no rule for the retain flag: the ACL confines a device to its own channel topics and live
frames (test_broker_acl), and the ingest reports every retained message outside a device's availability and
status topics (and a status over ``max_status_bytes``) as a finding, found by one sweep of the broker's retained
store when it starts. Before: the ingest never saw them (shared subscriptions get no retained messages) and
the run was clean.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.fleet import Fleet
from tests.support.hostile import Device, record_msg, sidecar


def test_retained_junk_is_a_finding_of_the_ingest(fleet: Fleet, tmp_path: Path) -> None:
    evil = Device(tmp_path / "evil", "cam-evil", keys=fleet.key_dir("cam-evil"))
    link = fleet.link("cam-evil", client_id="cam-evil-retain")
    junk = {f"{evil.topic}/live/junk-{i}": b"j" * 50_000 for i in range(5)}
    junk[f"{evil.topic}/record"] = sidecar(evil.event())
    try:
        for topic, payload in junk.items():
            assert link.publish_wait(topic, payload, retain=True).code < 0x80, topic
        assert link.publish_wait(f"{evil.topic}/status", b'{"ok": true}', retain=True).code < 0x80  # legitimate
        ingest = fleet.ingest(tmp_path / "out", idle=10.0, client_id="ingest-retained")
        restart = sorted(evil.vault.path.rglob("000000000000.restart.rec"))[0].read_bytes()
        assert link.publish_wait(f"{evil.topic}/record", record_msg(evil, restart).payload).code < 0x80
        outcome, _ = ingest.communicate(timeout=120)
    finally:
        for topic in junk:  # the device clears its own junk: the module's other tests share this broker
            link.publish_wait(topic, b"", retain=True)
        link.close(offline=False)
        evil.close()
    report = json.loads(outcome)
    rep = report["devices"]["cam-evil"]
    found = {j["topic"]: j["bytes"] for j in rep["retained_junk"]}
    assert found == {t: len(p) for t, p in junk.items()}, found
    assert rep["retained_junk_count"] == len(junk) and "cam-evil" in report["findings"]

"""Each record is verified once, against its stored neighbours, in any arrival order (no whole-folder re-check)."""

from __future__ import annotations

import random
from pathlib import Path

from agent.customs.ingest import Ingest
from agent.customs.store.chain import Link, problems
from agent.signing.records import GENESIS_PREV
from agent.signing.verify import check
from agent.wire.messages import Inbound
from tests.support.sim_fleet import Fleet, Message


def _inbound(m: Message) -> Inbound:
    return Inbound(topic=m.topic, payload=m.payload, qos=1, retain=False, user_props=m.props)


def test_link_rules() -> None:
    a = Link(0, "a" * 64, GENESIS_PREV, "restart", "b1", 10)
    b = Link(1, "b" * 64, "a" * 64, "still", "b1", 20)
    assert problems(a, None, b) == [] and problems(b, a, None) == []
    wrong = Link(1, "c" * 64, "f" * 64, "still", "b1", 30)
    assert "chain broken" in problems(wrong, a, None)[0]
    early = Link(1, "b" * 64, "a" * 64, "still", "b1", 5)
    assert "monotonic" in problems(early, a, None)[0]
    assert problems(Link(0, "x" * 64, "1" * 64, "still", None, None), None, None) == [
        "seq 0 does not start the chain", "seq 0 is not a restart record"]


def test_shuffled_batches_store_a_vault_that_verifies(tmp_path: Path) -> None:
    fleet = Fleet(3, tmp_path / "ca.pem")
    msgs = fleet.restart_messages() + list(fleet.burst(60, media_every=4, media_size=3000))
    random.Random(7).shuffle(msgs)
    ingest = Ingest(tmp_path / "out", trusted_ca=[fleet.ca_file])
    try:
        for i in range(0, len(msgs), 16):
            assert all(ingest.handle_batch([_inbound(m) for m in msgs[i:i + 16]]))
        report = ingest.report()
    finally:
        ingest.close()
    assert len(report) == 3
    for dev, rep in report.items():
        assert rep.records == 21 and rep.missing == [] and rep.incomplete == [] and rep.refused == 0
        assert check(tmp_path / "out" / dev, trusted_ca=[]).ok


def test_a_record_that_does_not_link_is_counted(tmp_path: Path) -> None:
    fleet = Fleet(1, tmp_path / "ca.pem")
    dev = fleet.devices[0]
    msgs = fleet.restart_messages() + dev.seal("event")
    dev.sealer._prev = "ab" * 32  # a device (or a forger with its key) breaks its own chain
    msgs += dev.seal("event")
    ingest = Ingest(tmp_path / "out", trusted_ca=[fleet.ca_file])
    try:
        ingest.handle_batch([_inbound(m) for m in reversed(msgs)])
        rep = ingest.report()[dev.device_id]
    finally:
        ingest.close()
    assert rep.records == 3 and rep.refused == 1

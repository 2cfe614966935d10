"""A stolen device key, two histories, two ingest workers: the group still decides each seq once.

The attacker signs two different histories of one device (both genuinely signed) and sends them at the
same moment, one to each worker of a ``--share`` group whose bookkeeping is in PostgreSQL (per-device
advisory locks instead of one group lock). Whatever the interleaving: every seq is stored once, every
other record for it is a fork finding, and every stored neighbour pair that does not link is a chain
finding — none of it can be missed because two workers decided the same device at once.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.customs.ingest import Ingest
from agent.customs.state.postgres import PostgresState
from agent.customs.store.model import Query
from agent.customs.store.postgres import PostgresIndex
from agent.signing.keys import DeviceIdentity, _name, issue_leaf, make_ca
from agent.wire.mqtt import Inbound
from tests.support.postgres import Postgres
from tests.support.sim_fleet import FleetDevice, Message

SEQS = 40  # after each history's restart record (seq 0)


def _histories(ca_file: Path) -> tuple[list[Message], list[Message]]:
    ca_key, ca_cert = make_ca("Fleet Test CA", "Test Customs")
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_leaf(ca_key, ca_cert, _name("dev-stolen", "Test Customs", "evidence-camera"), key.public_key())
    out = []
    for _ in range(2):  # the same identity sealing two different histories
        dev = FleetDevice("dev-stolen", DeviceIdentity(key, leaf, (leaf, ca_cert)))
        msgs = list(dev.pending)
        for _ in range(SEQS):
            msgs += dev.seal("event")
        out.append(msgs)
    return out[0], out[1]


def _records(msgs: list[Message]) -> list[Message]:
    return [m for m in msgs if m.is_record]


def _inbound(m: Message) -> Inbound:
    return Inbound(m.topic, m.payload, 1, False, m.props)


def _feed(ingest: Ingest, msgs: Sequence[Message], start: threading.Barrier, counts: dict[str, int]) -> None:
    """What flow control does: batches of 4, a busy device's messages offered again with the next batch."""
    todo = [_inbound(m) for m in msgs]
    while todo:
        with contextlib.suppress(threading.BrokenBarrierError):  # both start each batch together: overlap
            start.wait(30)
        batch, todo = todo[:4], todo[4:]
        done = ingest.handle_batch(batch)
        assert False not in done, "nothing here may fail"
        busy = [m for m, ok in zip(batch, done, strict=True) if ok is None]
        counts["busy"] = counts.get("busy", 0) + len(busy)
        todo = busy + todo
    start.abort()  # the other worker goes on alone


def test_two_histories_split_over_two_workers_are_decided_once(pg: Postgres, tmp_path: Path) -> None:
    a, b = _histories(tmp_path / "ca.pem")
    out = tmp_path / "out"
    ingests, states = [], []
    for _ in range(2):
        index = PostgresIndex(pg.dsn)
        index.migrate()
        states.append(PostgresState(index))
        ingests.append((Ingest(out, trusted_ca=[tmp_path / "ca.pem"], index=index, state=states[-1]), index))
    start = threading.Barrier(2)
    counts: dict[str, int] = {}
    threads = [threading.Thread(target=_feed, args=(ing, msgs, start, counts))
               for (ing, _), msgs in zip(ingests, (a, b), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    ingest, index = ingests[0]
    rep = ingest.report()["dev-stolen"]
    items = {r.seq: r for r in index.iter_items(Query(device="dev-stolen", limit=100))}
    assert sorted(items) == list(range(SEQS + 1)), "every seq stored exactly once"
    assert rep.records == SEQS + 1 and rep.max_seq == SEQS and rep.missing_count == 0
    assert rep.fork_count == SEQS + 1, "the other history's record for every seq is a fork"
    findings = index.findings("dev-stolen")
    assert sum(f.kind == "fork" for f in findings) == SEQS + 1
    chain = {f.seq for f in findings if f.kind == "chain"}
    prev = {s: json.loads(r.body)["prev"] for s, r in items.items()}
    for s in range(1, SEQS + 1):
        if prev[s] != items[s - 1].item:  # the stored seq s does not link to the stored seq s-1
            assert s in chain or s - 1 in chain, f"unlinked seqs {s - 1}/{s} stored without a chain finding"
    waits = sum(state.waits for state in states)
    mixed = sum(items[i].item == m.item for i, m in enumerate(_records(a)))
    print(f"busy hand-backs {counts.get('busy', 0)}, waits {waits}, chain findings {len(chain)}, "
          f"history A stored at {mixed} of {SEQS + 1} seqs")
    for ing, idx in ingests:
        ing.close()
        idx.close()

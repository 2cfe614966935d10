"""PostgreSQL group state in pipeline mode: an error the server raises late still belongs to its message.

A batch on PostgreSQL is pipelined and has no savepoint per message: a statement's error reaches the
client at the next read, possibly while a later message is handled. The batch then rolls back and flow
control hands its messages in one at a time (each in a savepoint, synced at its end), so the one message
the server refuses is refused and quarantined, and every other message of the batch is stored.
"""

from __future__ import annotations

from pathlib import Path

from agent.customs.ingest import Ingest
from agent.customs.state.postgres import PostgresState
from agent.customs.store.postgres import PostgresIndex
from tests.support.hostile import Device, chunk_msgs, record_msg, sidecar
from tests.support.ingest_path import deliver
from tests.support.postgres import Postgres


def test_a_late_server_error_refuses_only_its_message(pg: Postgres, tmp_path: Path) -> None:
    dev = Device(tmp_path / "dev", "cam-1")
    index = PostgresIndex(pg.dsn)
    index.migrate()
    ingest = Ingest(tmp_path / "out", index=index, state=PostgresState(index))
    try:
        template = dev.event()
        # genuinely signed and canonical, but PostgreSQL's JSONB refuses \u0000 (22P05) — on the server,
        # so in pipeline mode the error only arrives with a later statement's answer
        poison = dev.forge(template, seq=100, extra={"type": "test", "note": "a\u0000b"})
        before = [record_msg(dev, sidecar(template))]
        data = b"j" * 3000
        still = dev.still(data)
        after = [record_msg(dev, sidecar(still)), *chunk_msgs(dev, still, data, chunk=1024),
                 record_msg(dev, sidecar(dev.event()))]
        deliver(ingest, *before, record_msg(dev, poison), *after, batch=64)
        rep = ingest.report()["cam-1"]
        assert rep.refused == 1 and rep.refusals == {"internal_error": 1}
        assert rep.records == 3 and not rep.incomplete and 100 not in rep.missing
        quarantined = list((tmp_path / "out" / ".ingest" / "quarantine" / "cam-1").glob("*.json"))
        assert len(quarantined) == 1 and b"Unicode" in quarantined[0].read_bytes()
        placed = list((tmp_path / "out" / "cam-1" / "items").rglob("*.jpg"))
        assert len(placed) == 1 and placed[0].read_bytes() == data
    finally:
        ingest.close()
        index.close()
        dev.close()

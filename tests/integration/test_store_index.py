"""The customs index on both backends: SQLite (a file) and a real PostgreSQL server the test starts itself."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.customs.store.base import SCHEMA_VERSION, Index
from agent.customs.store.chain import Link
from agent.customs.store.model import ItemRow, Query
from agent.customs.store.sqlite import SqliteIndex
from agent.signing.records import parse_sidecar
from tests.support.postgres import Postgres
from tests.support.sim_fleet import Fleet, Message


def _fresh_pg(pg: Postgres) -> str:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg.dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgres"])
def make_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[type[object]]:
    opened: list[Index] = []
    if request.param == "sqlite":
        path = tmp_path / "index.sqlite"

        def make() -> Index:
            opened.append(SqliteIndex(path))
            return opened[-1]
    else:
        from agent.customs.store.postgres import PostgresIndex

        dsn = _fresh_pg(request.getfixturevalue("pg"))

        def make() -> Index:
            opened.append(PostgresIndex(dsn))
            return opened[-1]
    yield make  # type: ignore[misc]
    for index in opened:
        index.close()


def _rows(msgs: list[Message]) -> list[tuple[ItemRow, Link]]:
    out = []
    for m in msgs:
        if m.is_record:
            signed = parse_sidecar(m.payload, m.topic)
            out.append((ItemRow.of(signed.hash, signed.body, signed.record), Link.of(signed.hash, signed.record)))
    return out


def test_items_are_write_once_chains_checked_and_searchable(make_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fleet = Fleet(2, tmp_path / "ca.pem")
    rows = _rows(fleet.restart_messages() + list(fleet.burst(20, media_every=5)))
    index = make_index()
    assert index.migrate() == SCHEMA_VERSION
    assert make_index().migrate() == SCHEMA_VERSION  # a second worker: nothing to do
    with index.transaction():
        for row, link in reversed(rows):  # any arrival order
            assert index.put_item(row, link) == (True, [])
    with index.transaction():
        assert index.put_item(*rows[3]) == (False, [])  # redelivered: no-op
    dev = fleet.devices[0].device_id
    devices = {d.device: d for d in index.devices()}
    assert devices[dev].records == 11 and devices[dev].max_seq == 10
    assert len(index.search(Query(device=dev, limit=1000))) == 11
    assert {r.kind for r in index.search(Query(kind="still"))} == {"still"}
    events = index.search(Query(event_type="load_test", device=dev))
    assert events and all(r.kind == "event" for r in events)
    paged = list(index.iter_items(Query(limit=3)))
    assert len(paged) == 22 and len({r.item for r in paged}) == 22
    newest = paged[0].captured_us
    assert index.search(Query(since_us=newest))[0].captured_us == newest
    assert index.findings() == []


def test_fork_and_broken_link_become_findings(make_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fleet = Fleet(1, tmp_path / "ca.pem")
    dev = fleet.devices[0]
    first = _rows(fleet.restart_messages() + dev.seal("event"))
    dev.sealer._next_seq = 1  # the device seals seq 1 again, differently: a fork
    fork = _rows(dev.seal("event"))
    index = make_index()
    index.migrate()
    with index.transaction():
        for row, link in first:
            index.put_item(row, link)
        new, found = index.put_item(*fork[0])
    assert not new and "second, different record" in found[0]
    kinds = [f.kind for f in index.findings(dev.device_id)]
    assert kinds == ["fork"]


def test_two_workers_insert_the_same_items_concurrently(make_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fleet = Fleet(4, tmp_path / "ca.pem")
    rows = _rows(fleet.restart_messages() + list(fleet.burst(200, media_every=0)))
    make_index().migrate()
    errors: list[BaseException] = []

    def work(index: Index) -> None:
        try:
            for i in range(0, len(rows), 25):
                with index.transaction():
                    for row, link in rows[i:i + 25]:
                        index.put_item(row, link)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(make_index(),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    check = make_index()
    assert sum(d.records for d in check.devices()) == 204
    assert check.findings() == []

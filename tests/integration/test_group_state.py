"""The ingest group's bookkeeping in PostgreSQL (agent.customs.state.postgres) against a real server.

Per-device advisory locks: a batch holds its free devices and is told which are busy; a batch whose
every device is busy waits for one, holding none. A connection the server drops is opened again.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from agent.customs.state.base import SCHEMA_VERSION, StateError
from agent.customs.state.postgres import PostgresState
from agent.customs.store.postgres import PostgresIndex
from tests.support.postgres import Postgres


def _state(pg: Postgres) -> PostgresState:
    index = PostgresIndex(pg.dsn)
    index.migrate()
    return PostgresState(index)


def _waiting_on_advisory(pg: Postgres) -> int:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND wait_event = 'advisory'").fetchone()
    return int(row[0]) if row else 0


def test_busy_devices_are_handed_back_and_an_all_busy_batch_waits(pg: Postgres) -> None:
    a, b = _state(pg), _state(pg)
    got: list[set[str]] = []
    with a.batch(["dev-a", "dev-b"]) as held:
        assert held == {"dev-a", "dev-b"}
        with b.batch(["dev-b", "dev-c"]) as other:
            assert other == {"dev-c"}  # dev-b is busy: handed back, not waited for
        waiter = threading.Thread(target=lambda: got.append(_enter(b, ["dev-b"])))
        waiter.start()
        deadline = time.monotonic() + 30
        while _waiting_on_advisory(pg) < 1:  # b now waits inside PostgreSQL, holding nothing
            assert time.monotonic() < deadline, "the all-busy batch did not wait for its device"
            time.sleep(0.05)
        assert got == []
    waiter.join(30)
    assert got == [{"dev-b"}] and b.waits == 1
    for s in (a, b):
        s.index.close()


def test_the_wait_for_a_busy_device_is_bounded(pg: Postgres) -> None:
    """A worker hung mid-batch holding its devices makes the others retry later, never wait forever."""
    a, b = _state(pg), _state(pg)
    b.wait_s = 0.2
    with a.batch(["dev-h"]):
        with pytest.raises(b.retryable) as failed, b.batch(["dev-h"]):
            pass
        assert isinstance(failed.value, psycopg.errors.LockNotAvailable)
    with b.batch(["dev-h"]) as held:  # once it is free, the next try holds it
        assert held == {"dev-h"}
    for s in (a, b):
        s.index.close()


def test_a_state_schema_other_than_the_code_is_one_clear_line(pg: Postgres) -> None:
    s = _state(pg)
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("UPDATE ingest.state_version SET version = 1")
    try:
        with pytest.raises(StateError, match=r"^the index's ingest state has schema 1, .*; use a new index database$"):
            PostgresState(s.index)
    finally:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("UPDATE ingest.state_version SET version = %s", (SCHEMA_VERSION,))
        s.index.close()


def _enter(state: PostgresState, devices: list[str]) -> set[str]:
    with state.batch(devices) as held:
        return held


def test_state_tables_live_in_their_own_schema(pg: Postgres) -> None:
    s = _state(pg)
    with s.batch(["dev-x"]):
        s.execute("INSERT INTO counters VALUES (?, ?, ?)", ("dev-x", "alerts", 1))
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name IN "
                            "('records', 'counters', 'chain_links', 'items')").fetchall()
        assert sorted(r[0] for r in rows) == ["ingest", "ingest", "ingest", "public"]
        assert conn.execute("SELECT n FROM ingest.counters WHERE device = 'dev-x'").fetchone() == (1,)
    s.index.close()


def test_a_dropped_connection_is_opened_again(pg: Postgres) -> None:
    s = _state(pg)
    pid = s.index.connection().info.backend_pid
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(s.retryable), s.batch(["dev-r"]):  # the first use finds it gone: a retryable failure
        s.execute("INSERT INTO counters VALUES (?, ?, ?)", ("dev-r", "alerts", 1))
    with s.batch(["dev-r"]) as held:  # the next batch reconnects (and finds the state tables again)
        assert held == {"dev-r"}
        s.execute("INSERT INTO counters VALUES (?, ?, ?)", ("dev-r", "alerts", 1))
    assert s.index.connection().info.backend_pid != pid
    with s.reading():
        assert s.execute("SELECT n FROM counters WHERE device = ?", ("dev-r",)).fetchone() == (1,)
    s.index.close()

"""`evidence-officer ingest --share G --index postgresql://…`: two workers fill one PostgreSQL index.

A worker is killed with SIGKILL mid-stream and started again with the same client id: the broker
redelivers what it had not acknowledged, and every record is in the index exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from agent.customs.store.model import Query
from agent.customs.store.postgres import PostgresIndex
from tests.support.broker import Mosquitto
from tests.support.helpers import REPO
from tests.support.postgres import Postgres
from tests.support.sim_fleet import Fleet, Publisher

RECORDS = 1500
DEVICES = 30


def _worker(broker: Mosquitto, out: Path, ca: Path, dsn: str, i: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", broker.url, "--out", str(out),
             "--share", "idx", "--client-id", f"ingest-idx-{i}", "--trust-ca", str(ca), "--index", dsn,
             "--batch", "32"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=err)


def _wait_log(broker: Mosquitto, text: str, timeout: float = 90) -> None:  # a loaded CI machine starts Python slowly
    deadline = time.monotonic() + timeout
    while text not in broker.log_text():
        assert time.monotonic() < deadline, f"{text!r} not in the broker log"
        time.sleep(0.1)


def test_two_workers_and_a_sigkill_fill_one_postgres_index(pg: Postgres, tmp_path: Path) -> None:
    fleet = Fleet(DEVICES, tmp_path / "ca.pem")
    messages = fleet.restart_messages() + list(fleet.burst(RECORDS - DEVICES, media_every=3, media_size=4000))
    out = tmp_path / "out"
    index = PostgresIndex(pg.dsn)
    with Mosquitto(tmp_path / "broker", tls=False) as broker:
        workers = [_worker(broker, out, fleet.ca_file, pg.dsn, i, tmp_path / f"w{i}.log") for i in range(2)]
        try:
            for i in range(2):
                _wait_log(broker, f"as ingest-idx-{i}")
            pub = Publisher("127.0.0.1", broker.port, "fleet-idx")
            pub.send(messages)
            deadline = time.monotonic() + 300
            killed = False
            while True:
                stored = sum(d.records for d in index.devices())
                if not killed and stored >= RECORDS // 3:
                    os.kill(workers[1].pid, signal.SIGKILL)  # mid-stream, with messages in flight
                    workers[1].wait(10)
                    workers[1] = _worker(broker, out, fleet.ca_file, pg.dsn, 1, tmp_path / "w1.log")
                    killed = True
                done = len([r for r in index.iter_items(Query(limit=1000)) if r.media_done])
                if done >= RECORDS:
                    break
                assert time.monotonic() < deadline, f"only {done}/{RECORDS} indexed with media: loss or stall"
                time.sleep(0.5)
            pub.close()
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(60)
    devices = index.devices()
    assert len(devices) == DEVICES
    assert all(d.records == RECORDS // DEVICES and d.max_seq == RECORDS // DEVICES - 1 for d in devices)
    assert index.findings() == []
    one = devices[0].device
    assert [r.seq for r in index.search(Query(device=one, limit=5))] == [49, 48, 47, 46, 45]
    assert index.search(Query(kind="still", limit=1))[0].media_done
    # the group's bookkeeping is in the index database, not in a file the workers must share
    assert not (out / ".ingest" / "state.sqlite").exists()
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ingest.records").fetchone() == (RECORDS,)
    index.close()


def test_a_worker_whose_database_connection_is_dropped_reconnects_and_loses_nothing(
        pg: Postgres, tmp_path: Path) -> None:
    fleet = Fleet(10, tmp_path / "ca.pem", prefix="drop")
    messages = fleet.restart_messages() + list(fleet.burst(290, media_every=3, media_size=4000))
    index = PostgresIndex(pg.dsn)
    with Mosquitto(tmp_path / "broker", tls=False) as broker:
        worker = _worker(broker, tmp_path / "out", fleet.ca_file, pg.dsn, 0, tmp_path / "w0.log")
        try:
            _wait_log(broker, "as ingest-idx-0")
            pub = Publisher("127.0.0.1", broker.port, "fleet-drop")
            pub.send(messages[:len(messages) // 2])
            _wait_stored(index, "drop-", 100)
            with psycopg.connect(pg.dsn, autocommit=True) as conn:  # a failover, a restart, an idle-killer
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'evidence' "
                             "AND pid <> pg_backend_pid() AND pid <> %s AND backend_type = 'client backend'",
                             (index.connection().info.backend_pid,))
            pub.send(messages[len(messages) // 2:])
            _wait_stored(index, "drop-", 300)
            pub.close()
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
    assert "reconnected to the PostgreSQL index" in (tmp_path / "w0.log").read_text()
    mine = [d for d in index.devices() if d.device.startswith("drop-")]
    assert len(mine) == 10 and all(d.records == 30 and d.max_seq == 29 for d in mine)
    index.close()


def _wait_stored(index: PostgresIndex, prefix: str, n: int) -> None:
    deadline = time.monotonic() + 120
    while sum(d.records for d in index.devices() if d.device.startswith(prefix)) < n:
        assert time.monotonic() < deadline, f"fewer than {n} records of {prefix}* indexed: loss or stall"
        time.sleep(0.3)


def test_an_unreachable_index_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", "mqtt://127.0.0.1:1", "--out",
         str(tmp_path / "out"), "--index", "postgresql://ingest:secret@127.0.0.1:1/customs"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("evidence-officer: --index: cannot open the PostgreSQL index"), proc.stderr
    assert "Traceback" not in proc.stderr and "secret" not in proc.stderr

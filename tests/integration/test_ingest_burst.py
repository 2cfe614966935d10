"""A burst after an outage: 10 000 sealed records (a third with media) into one `evidence-officer ingest`.

Mosquitto 2.0 pushes thousands of unacknowledged messages to a slow subscriber whatever Receive
Maximum says; the ingest must take them in only as fast as it stores them, lose none, and never
need a restart. A stall (no progress for a minute) fails the test at once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.broker import Mosquitto
from tests.support.helpers import REPO
from tests.support.sim_fleet import Fleet, Publisher

RECORDS = 10_000
DEVICES = 20


def _stored(out: Path) -> int:
    db_path = out / ".ingest" / "state.sqlite"
    if not db_path.exists():
        return 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM records WHERE media_done=1").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def _wait_log(broker: Mosquitto, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in broker.log_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the broker log")


def test_burst_of_10000_records_is_stored_without_a_restart(tmp_path: Path) -> None:
    fleet = Fleet(DEVICES, tmp_path / "fleet-ca.pem")
    messages = fleet.restart_messages() + list(fleet.burst(RECORDS - DEVICES))
    expected = RECORDS
    out = tmp_path / "out"
    with Mosquitto(tmp_path / "broker", tls=False) as broker:
        cli = subprocess.Popen(
            [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", broker.url, "--out", str(out),
             "--share", "burst", "--client-id", "ingest-burst", "--trust-ca", str(fleet.ca_file),
             "--report", str(tmp_path / "report.json")],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _wait_log(broker, "as ingest-burst", 15)
            time.sleep(0.5)
            pub = Publisher("127.0.0.1", broker.port, "fleet-burst")
            pub.send(messages)
            assert pub.wait_acked(len(messages), 120), f"broker took only {pub.acked}/{len(messages)}"
            pub.close()
            last, since = -1, time.monotonic()
            while True:
                n = _stored(out)
                if n >= expected:
                    break
                if n != last:
                    last, since = n, time.monotonic()
                assert cli.poll() is None, "ingest exited during the burst"
                assert time.monotonic() - since < 60, f"ingest stalled at {n}/{expected} records"
                time.sleep(0.5)
        finally:
            cli.send_signal(signal.SIGTERM)
            _out, err = cli.communicate(timeout=60)
    report = json.loads((tmp_path / "report.json").read_text())["devices"]
    assert len(report) == DEVICES
    stored = sum(d["records"] for d in report.values())
    assert stored == expected, err.decode()[-2000:]
    for dev, rep in report.items():
        assert rep["missing"] == [] and rep["incomplete"] == [] and rep["refused"] == 0, (dev, rep)
    assert cli.returncode == 0

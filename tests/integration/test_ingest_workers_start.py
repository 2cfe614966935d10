"""Workers of one ``--share`` group started at the same moment on a fresh ``--out`` all come up.

Before, two of them could race to put the new state database into WAL mode and one died with
``sqlite3.OperationalError: database is locked`` (seen once in a full-suite run); the state is now
opened under the group's store lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.broker import Mosquitto
from tests.support.helpers import REPO

WORKERS = 6


def test_workers_started_together_on_a_fresh_out_all_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Mosquitto(tmp_path / "broker", tls=False) as broker:
        procs = [subprocess.Popen(
            [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", broker.url, "--out", str(out),
             "--share", "start", "--client-id", f"ingest-start-{i}", "--seconds", "3"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True) for i in range(WORKERS)]
        results = [p.communicate(timeout=180) for p in procs]
    for i, (p, (_, err)) in enumerate(zip(procs, results, strict=True)):
        assert p.returncode == 0, f"worker {i}: {err[-1500:]}"
        assert "Traceback" not in err, f"worker {i}: {err[-1500:]}"

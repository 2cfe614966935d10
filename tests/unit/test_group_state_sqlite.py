"""The SQLite group state (agent.customs.state.sqlite): its schema version, and a clear line for an old file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.customs.state.base import SCHEMA_VERSION, StateError
from agent.customs.state.sqlite import SqliteState
from tests.support.helpers import REPO


def test_a_new_state_carries_its_schema_version_and_holds_every_device(tmp_path: Path) -> None:
    state = SqliteState(tmp_path)
    with state.batch(["dev-a", "dev-b"]) as held:
        assert held == {"dev-a", "dev-b"}  # one group lock: every batch holds every device
        state.execute("INSERT INTO counters VALUES (?, ?, ?)", ("dev-a", "alerts", 1))
    assert state.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    state.close()
    state.close()  # idempotent


def test_a_newer_state_file_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.sqlite")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="newer ingest"):
        SqliteState(tmp_path)


def test_an_older_state_is_one_clear_line_from_the_cli(tmp_path: Path) -> None:
    folder = tmp_path / "out" / ".ingest"
    folder.mkdir(parents=True)
    db = sqlite3.connect(folder / "state.sqlite")
    db.execute("CREATE TABLE records (device TEXT)")
    db.execute("PRAGMA user_version = 1")
    db.close()
    proc = subprocess.run([sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", "mqtt://127.0.0.1:1",
                           "--out", str(tmp_path / "out")], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("evidence-officer: --out: ") and "older ingest (schema 1)" in proc.stderr
    assert "Traceback" not in proc.stderr

"""A real PostgreSQL server for tests and benchmarks: ``initdb`` + ``pg_ctl`` in a temporary folder.

PostgreSQL refuses to run as root, so as root the cluster belongs to ``nobody`` (its folder is created
world-traversable under /tmp and chowned); otherwise it runs as the current user. It listens on a free
loopback port with trust authentication (loopback only, thrown away after the test).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.broker import free_port

UNPRIVILEGED = "nobody"


def pg_bin() -> Path | None:
    """The folder with initdb/pg_ctl (Debian keeps them under /usr/lib/postgresql/<major>/bin)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and (Path(found).parent / "createdb").exists() else None


class Postgres:
    """One throw-away cluster; ``dsn`` connects as the superuser ``postgres`` to database ``evidence``."""

    def __init__(self) -> None:
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bin = bindir
        self.root = Path(tempfile.mkdtemp(prefix="pg-test-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, UNPRIVILEGED)
            self._as = ["runuser", "-u", UNPRIVILEGED, "--"]
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/evidence"

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._as, *args], cwd=self.root, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")

    def start(self) -> Postgres:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                "-c max_connections=50 -c shared_buffers=32MB -c fsync=on")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-t", "60", "-o", opts, "start")
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "evidence")
        return self

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                            "stop"], cwd=self.root, capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def postgres_or_skip() -> Postgres:
    """A started server, or skip the test saying why it cannot run here."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql: scripts/install-and-test.sh does)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: PostgreSQL cannot be started as an unprivileged user")
    return Postgres().start()

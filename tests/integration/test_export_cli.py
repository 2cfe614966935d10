"""`evidence-agent export` through the CLI: refuses to overwrite without --force, leaves no temp file on Ctrl-C,
and shows progress bars (verify, export) only when stderr is a terminal."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from tests.support.helpers import REPO, moment

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
CLI = [sys.executable, "-m", "agent.device.cli"]


@pytest.fixture
def stalled(sealer: Sealer, vault: Vault, manual_clock: ManualClock) -> tuple[Path, Path]:
    """A vault whose fourth media file is a FIFO: the export blocks reading it until the test lets it go."""
    sealer.start(moment(manual_clock))
    items = []
    for i in range(6):
        manual_clock.advance(1)
        items.append(sealer.seal("still", moment(manual_clock), media=bytes([i]) * 1000, media_type="image/jpeg",
                                 ext="jpg"))
    assert items[3].media_path is not None
    media = vault.path / items[3].media_path
    media.unlink()
    os.mkfifo(media)
    return vault.path, media


def _export_reading(proc: subprocess.Popen[str], fifo: Path) -> int:
    """Wait until the export has opened ``fifo`` for reading (it is then mid-bundle, blocked); the write end."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only once a reader holds the FIFO open
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"the export never reached {fifo.name} (exit {proc.poll()})")


def test_export_refuses_to_overwrite_without_force(sealer: Sealer, vault: Vault, manual_clock: ManualClock,
                                                   tmp_path: Path) -> None:
    sealer.start(moment(manual_clock))
    out = tmp_path / "bundle.zip"
    out.write_bytes(b"an earlier bundle")
    r = subprocess.run([*CLI, "export", str(vault.path), "--out", str(out)], env=ENV, cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "already exists; give --force" in r.stderr
    assert out.read_bytes() == b"an earlier bundle"
    r = subprocess.run([*CLI, "export", str(vault.path), "--out", str(out), "--force"], env=ENV, cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:2] == b"PK"


def test_ctrl_c_during_export_leaves_no_temp_file(stalled: tuple[Path, Path], tmp_path: Path) -> None:
    vault, fifo = stalled
    out = tmp_path / "bundle.zip"
    tmp = tmp_path / ".bundle.zip.tmp"
    # A job started in the background by a non-interactive shell (as CI scripts do) inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: the export gets Ctrl-C's default, as a user's shell gives it.
    proc = subprocess.Popen([*CLI, "export", str(vault), "--out", str(out)], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    writer = _export_reading(proc, fifo)
    try:
        assert tmp.exists()  # the export is blocked mid-bundle: it cannot finish before the signal
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        os.close(writer)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not tmp.exists() and not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _stderr_on_a_terminal(args: list[str]) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, *args], env={**ENV, "COLUMNS": "100"}, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, seen.decode(errors="replace")


def test_progress_bars_only_on_a_terminal(sealer: Sealer, vault: Vault, manual_clock: ManualClock,
                                          tmp_path: Path) -> None:
    sealer.start(moment(manual_clock))
    for i in range(30):
        manual_clock.advance(1)
        sealer.seal("still", moment(manual_clock), media=bytes([i]) * 1000, media_type="image/jpeg", ext="jpg")
    rc, err = _stderr_on_a_terminal(["export", str(vault.path), "--out", str(tmp_path / "b.zip")])
    assert rc == 0 and "exporting b.zip" in err
    rc, err = _stderr_on_a_terminal(["verify", str(tmp_path / "b.zip"), "--allow-untrusted"])
    assert rc == 0 and "verifying b.zip" in err
    piped = subprocess.run([*CLI, "verify", str(tmp_path / "b.zip"), "--allow-untrusted"], env=ENV, cwd=REPO,
                           capture_output=True,
                           text=True)
    assert piped.returncode == 0 and "verifying" not in piped.stderr and "━" not in piped.stderr

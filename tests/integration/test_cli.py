"""The CLI as a person runs it: demo, verify, export, reindex, run + SIGTERM, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.helpers import REPO


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "agent.device.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def demo_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vault = tmp_path_factory.mktemp("demo") / "vault"
    res = cli("demo", "--vault", str(vault), "--seconds", "3", "--still-interval", "0.5")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "verify: OK" in res.stdout
    return vault


def test_demo_then_verify_json(demo_vault: Path) -> None:
    res = cli("verify", str(demo_vault), "--json")
    assert res.returncode == 0, res.stdout
    report = json.loads(res.stdout)
    assert report["ok"] is True and report["items"] >= 4 and report["problems"] == []
    assert report["kinds"]["restart"] == 1 and report["kinds"]["still"] >= 3
    keys = demo_vault.with_name("vault-keys")
    assert oct((keys / "device.key").stat().st_mode & 0o777) == "0o600"
    assert not list(demo_vault.rglob("*.key"))  # the private key never enters the vault


def test_tampered_vault_exit_1_names_item(demo_vault: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(demo_vault, copy)
    jpg = sorted(copy.rglob("*.still.jpg"))[1]
    jpg.write_bytes(jpg.read_bytes()[:-10])
    res = cli("verify", str(copy))
    assert res.returncode == 1
    assert "PROBLEM" in res.stdout and jpg.name.split(".")[0].lstrip("0") in res.stdout


def test_export_bundle_and_reindex(demo_vault: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b.zip"
    assert cli("export", str(demo_vault), "--out", str(bundle)).returncode == 0
    res = cli("verify", str(bundle), "--ca", str(demo_vault / "device" / "chain.pem"))
    assert res.returncode == 0, res.stdout
    assert "chain checked against the trusted CA" in res.stdout
    for f in demo_vault.glob("index.sqlite*"):
        f.unlink()
    assert cli("verify", str(demo_vault)).returncode == 0
    res = cli("reindex", str(demo_vault))
    assert res.returncode == 0 and "reindexed" in res.stdout


def test_verify_with_wrong_ca_fails(demo_vault: Path, tmp_path: Path) -> None:
    assert cli("keys", "init", "--key-dir", str(tmp_path / "k"), "--device-id", "x").returncode == 0
    res = cli("verify", str(demo_vault), "--ca", str(tmp_path / "k" / "ca.pem"))
    assert res.returncode == 1 and "trusted CA" in res.stdout


def test_usage_and_config_errors_exit_2(tmp_path: Path) -> None:
    assert cli("verify").returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[capture]\nbackend = 'webcam'\nfsp = 3\n")
    res = cli("check-config", str(bad))
    assert res.returncode == 2
    assert "capture.backend" in res.stderr and "capture.fsp: unknown key" in res.stderr and str(bad) in res.stderr
    res = cli("verify", str(tmp_path / "nothing-here"))
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr


def _config(tmp_path: Path, capture: str) -> Path:
    assert cli("keys", "init", "--key-dir", str(tmp_path / "keys"), "--device-id", "cam-1").returncode == 0
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nid = "cam-1"\n[identity]\nkey_dir = "keys"\n[vault]\npath = "vault"\n'
                   f"[capture]\n{capture}\n")
    return cfg


def test_missing_camera_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    cfg = _config(tmp_path, 'backend = "opencv"\nsource = "/nonexistent/camera.mp4"')
    for res in (cli("check-config", str(cfg)), cli("run", "--config", str(cfg), "--seconds", "2")):
        assert res.returncode == 2, res.stderr
        assert "capture.source /nonexistent/camera.mp4 does not exist" in res.stderr
        assert "Traceback" not in res.stderr


def test_unreadable_camera_is_a_clear_error_and_keeps_what_was_sealed(tmp_path: Path) -> None:
    notvideo = tmp_path / "camera.mp4"
    notvideo.write_text("not a video")
    cfg = _config(tmp_path, f'backend = "opencv"\nsource = "{notvideo}"')
    assert cli("check-config", str(cfg)).returncode == 0
    res = cli("run", "--config", str(cfg), "--seconds", "2")
    assert res.returncode == 1 and str(notvideo) in res.stderr
    assert cli("verify", str(tmp_path / "vault")).returncode == 0


def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "width = 320\nheight = 240\nstill_interval_s = 0.3")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "agent.device.cli", "run", "--config", str(cfg)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list((tmp_path / "vault").rglob("*.still.rec"))) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "sealed" in out
    res = cli("verify", str(tmp_path / "vault"), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["kinds"]["still"] >= 3


def test_demo_on_a_read_only_location_is_one_clear_line() -> None:
    res = cli("demo", "--vault", "/sys/evidence-demo-vault", "--seconds", "1")  # sysfs: no folders may be made
    assert res.returncode == 2, res.stderr
    assert "cannot write the vault folder /sys/evidence-demo-vault" in res.stderr and "--vault" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1

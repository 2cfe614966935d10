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
    dev_ca = demo_vault.with_name("vault-keys") / "ca.pem"  # the device's development CA, kept beside its key
    res = cli("verify", str(demo_vault), "--json", "--ca", str(dev_ca))
    assert res.returncode == 0, res.stdout
    report = json.loads(res.stdout)
    assert report["trusted"] is True and "Development CA" in report["issuer"]
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
    assert cli("verify", str(demo_vault), "--allow-untrusted").returncode == 0
    res = cli("reindex", str(demo_vault))
    assert res.returncode == 0 and "reindexed" in res.stdout


def test_verify_with_wrong_ca_fails(demo_vault: Path, tmp_path: Path) -> None:
    assert cli("keys", "init", "--key-dir", str(tmp_path / "k"), "--device-id", "x").returncode == 0
    res = cli("verify", str(demo_vault), "--ca", str(tmp_path / "k" / "ca.pem"))
    assert res.returncode == 1 and "trusted CA" in res.stdout


def test_intact_but_untrusted_exits_3_and_says_so_first(demo_vault: Path) -> None:
    """Without --ca a fabricated vault would verify just as well: that is not exit 0 (it was, before)."""
    res = cli("verify", str(demo_vault))
    assert res.returncode == 3, res.stdout
    assert "INTACT BUT NOT TRUSTED" in res.stdout.splitlines()[0]
    doc = json.loads(cli("verify", str(demo_vault), "--json").stdout)
    assert doc["ok"] is True and doc["trusted"] is False and doc["exit_code"] == 3
    assert cli("verify", str(demo_vault), "--allow-untrusted").returncode == 0


def test_usage_and_config_errors_exit_2(tmp_path: Path) -> None:
    assert cli("verify").returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[capture]\nbackend = 'webcam'\nfsp = 3\n")
    res = cli("check-config", str(bad))
    assert res.returncode == 2
    assert "capture.backend" in res.stderr and "capture.fsp: unknown key" in res.stderr and str(bad) in res.stderr
    assert cli("verify", str(tmp_path / "nothing-here")).returncode == 1


def _config(tmp_path: Path, capture: str) -> Path:
    assert cli("keys", "init", "--key-dir", str(tmp_path / "keys"), "--device-id", "cam-1").returncode == 0
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nid = "cam-1"\n[identity]\nkey_dir = "keys"\n[vault]\npath = "vault"\n'
                   f"[capture]\n{capture}\n")
    return cfg


def test_unreadable_camera_is_a_clear_error_and_keeps_what_was_sealed(tmp_path: Path) -> None:
    cfg = _config(tmp_path, 'backend = "opencv"\nsource = "/nonexistent/camera.mp4"')
    assert cli("check-config", str(cfg)).returncode == 0
    res = cli("run", "--config", str(cfg), "--seconds", "2")
    assert res.returncode == 1 and "/nonexistent/camera.mp4" in res.stderr
    assert cli("verify", str(tmp_path / "vault"), "--ca", str(tmp_path / "keys" / "ca.pem")).returncode == 0


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
    res = cli("verify", str(tmp_path / "vault"), "--json", "--ca", str(tmp_path / "keys" / "ca.pem"))
    assert res.returncode == 0 and json.loads(res.stdout)["kinds"]["still"] >= 3

"""The systemd units as installed: they verify, they are hardened (exposure <= 3.0), and the
pre-start step really validates the config the service runs with."""

from __future__ import annotations

import ctypes
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd" / "system"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
EXE = "/usr/bin/evidence-agent"
MAX_EXPOSURE = 3.0

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def _directives(unit: Path, key: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^{key}=(.*)$", unit.read_text(), re.MULTILINE)]


@pytest.fixture(scope="module")
def staged_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the units whose /usr/bin/evidence-agent points at a stub (verify checks it is executable)."""
    d = tmp_path_factory.mktemp("units")
    stub = d / "evidence-agent"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    for name in SERVICES:
        (d / name).write_text((UNITS / name).read_text().replace(EXE, str(stub)))
    return d


def test_units_exist() -> None:
    assert {"evidence-agent.service", "evidence-agent-provision.service"} <= set(SERVICES)


@needs_analyze
def test_systemd_analyze_verify(staged_units: Path) -> None:
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *SERVICES],
        cwd=staged_units,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stderr.strip() == ""


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_security_exposure(name: str) -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--man=no", name],
        cwd=UNITS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, out.stdout


def test_agent_unit_shape() -> None:
    unit = UNITS / "evidence-agent.service"
    single = {
        k: _directives(unit, k)
        for k in (
            "Type",
            "User",
            "Restart",
            "ProtectSystem",
            "NoNewPrivileges",
            "PrivateTmp",
            "CapabilityBoundingSet",
            "StateDirectory",
        )
    }
    assert single == {
        "Type": ["notify"],
        "User": ["evidence"],
        "Restart": ["on-failure"],
        "ProtectSystem": ["strict"],
        "NoNewPrivileges": ["yes"],
        "PrivateTmp": ["yes"],
        "CapabilityBoundingSet": [""],
        "StateDirectory": ["evidence-agent"],
    }
    assert _directives(unit, "WatchdogSec")
    assert set(_directives(unit, "SupplementaryGroups")[0].split()) == {"video", "gpio", "dialout"}
    allowed = " ".join(_directives(unit, "DeviceAllow"))
    for dev in ("video4linux", "ttyAMA", "gpiochip"):
        assert dev in allowed
    provision = UNITS / "evidence-agent-provision.service"
    assert "!/var/lib/evidence-agent/provisioned" in _directives(provision, "ConditionPathExists")
    assert _directives(provision, "Type") == ["oneshot"]


def test_exec_start_pre_validates_the_config_the_service_runs_with(tmp_path: Path) -> None:
    unit = UNITS / "evidence-agent.service"
    (pre,) = _directives(unit, "ExecStartPre")
    (start,) = _directives(unit, "ExecStart")
    pre_argv, start_argv = shlex.split(pre), shlex.split(start)
    assert pre_argv[:2] == [EXE, "check-config"] and start_argv[:2] == [EXE, "run"]
    config = start_argv[start_argv.index("--config") + 1]
    assert pre_argv[2:] == ["--config", config]
    # run the same command with this checkout's CLI: a broken config must fail, a good one pass
    cli = [sys.executable, "-m", "agent.device.cli", *pre_argv[1:-1]]
    good = tmp_path / "agent.toml"
    example = subprocess.run(
        [sys.executable, "-m", "agent.device.cli", "example-config"],
        cwd=REPO, capture_output=True, text=True, timeout=60
    )
    if example.returncode != 0:
        pytest.skip(f"agent.device.cli example-config unavailable: {example.stderr.strip()[-200:]}")
    # check-config also checks the files the service needs: give the example a real identity for its device id
    from agent.signing.keys import init_identity

    init_identity(tmp_path / "keys", "cam-0001", "Example Enterprise Ltd")
    good.write_text(example.stdout.replace('"/var/lib/evidence-agent/keys"', f'"{tmp_path / "keys"}"'))
    ok = subprocess.run([*cli, str(good)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    missing = tmp_path / "missing.toml"
    missing.write_text(example.stdout)  # the keys are not there yet: ExecStartPre stops the unit, naming them
    refused = subprocess.run([*cli, str(missing)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "/var/lib/evidence-agent/keys/device.key does not exist" in refused.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(example.stdout.replace("[capture]", "[capture]\nframe_rate_typo = 5", 1))
    fail = subprocess.run([*cli, str(bad)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert fail.returncode != 0
    assert "frame_rate_typo" in fail.stderr + fail.stdout


MDWE_PROBE = r"""
import ctypes, io
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:   # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    raise SystemExit(77)
import av, cv2, numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
cb = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)  # how c2pa-python calls our signer
assert cb(1) == 2
assert cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[0]
buf = io.BytesIO()
out = av.open(buf, "w", format="mp4")
s = out.add_stream("libx264", rate=10)
s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
for i in range(5):
    for p in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 40, np.uint8), format="bgr24")):
        out.mux(p)
for p in s.encode():
    out.mux(p)
out.close()
ec.generate_private_key(ec.SECP256R1()).sign(b"x", ec.ECDSA(hashes.SHA256()))
print("ok")
"""


def test_runtime_stack_works_under_memory_deny_write_execute() -> None:
    """MemoryDenyWriteExecute=yes is only safe if nothing we load needs W+X pages."""
    if not hasattr(ctypes, "CDLL"):
        pytest.skip("no ctypes")
    out = subprocess.run([sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True, timeout=120)
    if out.returncode == 77:
        pytest.skip("kernel has no PR_SET_MDWE (needs Linux >= 6.3)")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers not installed")
def test_sysusers_creates_the_service_user_in_its_groups(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\nvideo:x:44:\n")
    conf = REPO / "systemd" / "sysusers.d" / "evidence-agent.conf"
    out = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    user = next(line for line in (etc / "passwd").read_text().splitlines() if line.startswith("evidence:"))
    assert user.endswith(":/var/lib/evidence-agent:/usr/sbin/nologin")
    groups = {g.split(":")[0]: g.split(":")[3] for g in (etc / "group").read_text().splitlines()}
    assert all("evidence" in groups[name].split(",") for name in ("video", "gpio", "dialout"))

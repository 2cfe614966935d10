"""Self-test checks one by one, the command from a config (synthetic camera, simulated GPS), and in the service."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from agent.capture.base import CaptureBackend, CaptureSettings
from agent.core.clock import ManualClock, SystemClock
from agent.core.errors import CaptureError
from agent.core.model import Frame, GpsFix, GpsReading, TimeQuality
from agent.device.config import AgentConfig, parse_config
from agent.evidence.vault import Vault
from agent.selftest import command as selftest_cmd
from agent.selftest.checks import (
    CheckResult,
    SelftestReport,
    check_broker,
    check_camera,
    check_clock,
    check_disk,
    check_gps,
    check_identity,
    run_selftest,
)
from agent.signing.keys import DeviceIdentity, load_identity
from agent.signing.verify import verify
from agent.wire.mqtt_settings import MqttConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def frames(n: int, *, uniform: bool = False, fps: float = 10.0) -> list[Frame]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = np.full((24, 32, 3), 7, np.uint8) if uniform else rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        out.append(Frame(img, i, 0, int(i * 1e9 / fps)))
    return out


class FakeGps:
    def __init__(self, readings: list[GpsReading]) -> None:
        self.readings = readings

    def reading(self) -> GpsReading:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]

    def close(self) -> None:
        pass


def fix(**kw: object) -> GpsFix:
    args: dict[str, object] = {"lat": 1.0, "lon": 2.0, "mode": 3, "fix_time": "2026-01-01T00:00:00Z", "hdop": 0.9,
                               "satellites": 9, "talker": "GN", **kw}
    return GpsFix(**args)  # type: ignore[arg-type]


def test_camera_check() -> None:
    ok = check_camera(lambda: frames(10), "cam")
    assert ok.status == "pass" and "10 frames 32x24 at 10.0 fps" in ok.detail
    assert check_camera(lambda: frames(10, uniform=True), "cam").status == "warn"
    assert check_camera(lambda: frames(10), "synthetic", simulated=True).status == "warn"
    assert check_camera(lambda: frames(1), "cam").status == "fail"

    def broken() -> list[Frame]:
        raise CaptureError("/dev/video0 cannot be opened")

    bad = check_camera(broken, "cam")
    assert bad.status == "fail" and "/dev/video0" in bad.detail


def test_gps_check() -> None:
    assert check_gps(FakeGps([GpsReading(fix())]), 0).status == "pass"
    waited = check_gps(FakeGps([GpsReading(None, "no fix"), GpsReading(fix())]), 5, sleep=lambda _s: None)
    assert waited.status == "pass"
    none = check_gps(FakeGps([GpsReading(None, "no gps")]), 0)
    assert none.status == "fail" and "no gps" in none.detail
    assert check_gps(FakeGps([GpsReading(fix(mode=2))]), 0).status == "warn"
    assert check_gps(FakeGps([GpsReading(fix(hdop=9.5))]), 0).status == "warn"
    assert "SIMULATED" in check_gps(FakeGps([GpsReading(fix(talker="sim"))]), 0).detail
    off = check_gps(FakeGps([GpsReading(None, "disabled")]), 60)  # returns at once, does not wait 60 s
    assert off.status == "fail" and "disabled" in off.detail


def test_clock_and_broker_checks() -> None:
    assert check_clock(TimeQuality("gps", True, 1e-6)).status == "pass"
    unsynced = check_clock(TimeQuality("unsynced", False))
    assert unsynced.status == "warn" and unsynced.data["synced"] is False
    assert check_broker(None, 1).status == "warn"
    assert check_broker(lambda _t: None, 1, target="mqtts://b:8883").status == "pass"
    down = check_broker(lambda _t: "connection refused by b:8883", 1, target="mqtts://b:8883")
    assert down.status == "fail" and down.detail == "mqtts://b:8883: connection refused by b:8883"
    assert check_broker(lambda _t: None, 1, tls=False).status == "warn"
    assert check_broker(lambda _t: None, 1, note="the TLS client certificate is not the device's").status == "warn"


def test_disk_check(tmp_path: Path) -> None:
    assert check_disk(tmp_path, 100 * 2**20, 0).status == "pass"
    assert check_disk(tmp_path, 100 * 2**20, 95 * 2**20).status == "warn"
    full = check_disk(tmp_path, 100 * 2**20, 100 * 2**20)
    assert full.status == "fail" and full.data["used_bytes"] == 100 * 2**20


def test_identity_check(identity: DeviceIdentity, key_dir: Path) -> None:
    now = identity.cert.not_valid_before_utc + dt.timedelta(days=1)
    clock = ManualClock(wall=int(now.timestamp() * 1e9))
    good = check_identity(lambda: identity, clock)
    assert good.status == "pass" and good.data["key_id"] == identity.key_id
    near = identity.cert.not_valid_after_utc - dt.timedelta(days=10)
    assert check_identity(lambda: identity, ManualClock(wall=int(near.timestamp() * 1e9))).status == "warn"
    late = identity.cert.not_valid_after_utc + dt.timedelta(days=1)
    expired = check_identity(lambda: identity, ManualClock(wall=int(late.timestamp() * 1e9)))
    assert expired.status == "fail" and "not valid now" in expired.detail
    (key_dir / "device.key").unlink()
    missing = check_identity(lambda: load_identity(key_dir), clock)
    assert missing.status == "fail" and "missing" in missing.detail


def test_report_runs_every_check_and_a_crash_is_a_failure() -> None:
    def crash() -> CheckResult:
        raise RuntimeError("boom")

    report = run_selftest([lambda: CheckResult("camera", "pass", "ok"), crash,
                           lambda: CheckResult("clock", "warn", "unsynced")])
    assert not report.passed and [r.status for r in report.results] == ["pass", "fail", "warn"]
    assert "boom" in report.results[1].detail and report.failures == [report.results[1]]
    assert report.table().splitlines()[-1] == "selftest FAILED"
    warn_only = SelftestReport((CheckResult("clock", "warn", "unsynced"),), sealed={"seq": 3, "record_hash": "ab"})
    assert warn_only.passed and warn_only.as_record()["sealed"] == {"seq": 3, "record_hash": "ab"}


# -- the command from a config ----------------------------------------------------------------------------
def config(tmp_path: Path, key_dir: Path, **sections: object) -> AgentConfig:
    return parse_config({"device": {"id": "test-device", "site_id": "site-1"},
                         "identity": {"key_dir": str(key_dir)}, "vault": {"path": str(tmp_path / "vault")},
                         "capture": {"width": 64, "height": 48, "fps": 20}, "gps": {"source": "simulated"},
                         **sections})


def test_selftest_from_config_passes_and_seals(tmp_path: Path, key_dir: Path) -> None:
    report, sealing = selftest_cmd.selftest_from_config(config(tmp_path, key_dir), gps_wait=2)
    names = {r.name: r for r in report.results}
    assert report.passed, report.table()
    assert list(names) == ["camera", "gps", "clock", "broker", "disk", "identity", "config"]
    assert names["config"].status == "pass", names["config"].detail
    assert names["camera"].status == "warn" and "SYNTHETIC" in names["camera"].detail
    assert names["broker"].status == "warn" and "no uplink" in names["broker"].detail
    assert report.sealed is not None and sealing.startswith(f"sealed as seq {report.sealed['seq']}")
    checked = verify(tmp_path / "vault")
    assert checked.kinds == {"restart": 1, "selftest": 1}  # the command's own writer session


def test_selftest_does_not_seal_while_the_service_holds_the_vault(tmp_path: Path, key_dir: Path) -> None:
    cfg = config(tmp_path, key_dir)
    held = Vault(cfg.vault.path)  # the running service
    try:
        report, sealing = selftest_cmd.selftest_from_config(cfg, gps_wait=2)
    finally:
        held.close()
    assert report.passed and report.sealed is None
    assert "NOT sealed" in sealing and "in use" in sealing and "evidence-officer cmd DEVICE selftest" in sealing
    assert {r.name: r.status for r in report.results}["disk"] == "pass"


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    selftest_cmd.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    rc: int = args.func(args)
    return rc


def test_command_exit_codes_and_json(tmp_path: Path, key_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "agent.toml"
    toml.write_text(f'[device]\nid = "test-device"\n[identity]\nkey_dir = "{key_dir}"\n'
                    '[capture]\nwidth = 64\nheight = 48\nfps = 20\n[gps]\nsource = "disabled"\n')
    assert run_cli("selftest", "--config", str(toml), "--gps-wait", "0") == 1  # no GPS is a failure
    out = capsys.readouterr().out
    assert "gps       FAIL    GPS is disabled" in out and "selftest FAILED" in out and "sealed as seq 1" in out
    toml.write_text(toml.read_text().replace('"disabled"', '"simulated"'))
    assert run_cli("selftest", "--config", str(toml), "--json", "--no-seal") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] and result["sealing"] == "not sealed (--no-seal)" and "sealed" not in result
    (key_dir / "device.pem").unlink()
    assert run_cli("selftest", "--config", str(toml)) == 1
    out = capsys.readouterr().out
    assert "identity  FAIL" in out and "device.pem is missing" in out and "NOT sealed" in out


class HungCamera(CaptureBackend):
    name: ClassVar[str] = "hung"

    def _open(self) -> None:
        self.release = threading.Event()

    def _read(self) -> Frame:
        self.release.wait(30)  # a driver stuck in a blocking call, deaf to close()
        raise CaptureError("released")

    def _close(self) -> None:
        pass


def test_a_hung_camera_fails_instead_of_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selftest_cmd, "CAMERA_GRACE_S", 0.2)
    cam = HungCamera(CaptureSettings(), SystemClock())
    start = time.monotonic()
    result = check_camera(lambda: selftest_cmd.read_camera(cam, window_s=0.1), "hung")
    assert result.status == "fail" and "camera hung" in result.detail
    assert time.monotonic() - start < 5
    cam.release.set()


def test_broker_down_says_why() -> None:
    mqtt = MqttConfig(broker=f"mqtt://127.0.0.1:{free_port()}", client_id="cam-1")
    reason = selftest_cmd.broker_connect(mqtt)(5.0)
    assert reason is not None and "connection refused by 127.0.0.1" in reason


# -- inside the running service ----------------------------------------------------------------------------
def test_selftest_in_service_uses_the_live_hub_and_seals(tmp_path: Path, key_dir: Path) -> None:
    from agent.device.runtime import Agent
    from agent.selftest.in_service import selftest_in_service

    agent = Agent(config(tmp_path, key_dir))
    try:
        agent.start()
        deadline = time.monotonic() + 10
        while agent.hub.latest is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        report = selftest_in_service(agent.selftest_probes(), gps_wait=2)
        record = agent._selftest_command()  # what the officer's MQTT command replies
    finally:
        agent.close()
    assert report.passed, report.table()
    assert report.sealed is not None and record["sealed"]["seq"] == report.sealed["seq"] + 1
    assert {c["name"]: c["status"] for c in record["checks"]}["camera"] == "warn"  # synthetic
    assert verify(tmp_path / "vault").kinds["selftest"] == 2


"""The running agent with its edges: GPIO through gpiozero's MockFactory, systemd notify over a real socket."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent.device.config import parse_config
from agent.device.runtime import Agent
from agent.signing.keys import init_identity
from agent.signing.verify import verify
from tests.support.helpers import wait_for


def make_agent(tmp_path: Path, **sections: object) -> Agent:
    init_identity(tmp_path / "keys", "cam-1", "Test Enterprise")
    cfg = parse_config({"device": {"id": "cam-1"}, "identity": {"key_dir": str(tmp_path / "keys")},
                        "vault": {"path": str(tmp_path / "vault")},
                        "capture": {"width": 160, "height": 120, "fps": 20, "still_interval_s": 0.3},
                        **sections})
    return Agent(cfg)


def test_tamper_switch_and_button_are_sealed(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, gpio={"enabled": True, "pin_factory": "mock", "button_action": "mark"})
    factory = MockFactory()
    agent.device._factory = factory  # drive the same mock pins the agent uses
    try:
        agent.start()
        kinds = lambda: [r.kind for r in agent.vault.rows()]  # noqa: E731
        wait_for(lambda: "tamper" in kinds())  # pull-up, switch released: enclosure open at start
        tamper_pin = factory.pin(agent.cfg.gpio.tamper_switch)
        tamper_pin.drive_low()  # lid closed
        tamper_pin.drive_high()  # opened again
        factory.pin(agent.cfg.gpio.button).drive_low()
        wait_for(lambda: kinds().count("tamper") >= 3 and "mark" in kinds())
    finally:
        agent.close()
    report = verify(tmp_path / "vault")
    assert report.kinds["tamper"] >= 3 and report.kinds["mark"] == 1


def test_watchdog_ready_and_keepalives_reach_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    agent = make_agent(tmp_path)
    try:
        agent.start()
        got: list[str] = []
        while not any("WATCHDOG=1" in g for g in got):
            got.append(server.recv(4096).decode())
        assert any("READY=1" in g for g in got)
    finally:
        agent.close()
        server.close()
    assert verify(tmp_path / "vault").ok


def test_quota_evicts_only_what_may_go_and_seals_it_first(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, vault={"path": str(tmp_path / "vault"), "quota_mb": 1})
    try:
        agent.start()
        wait_for(lambda: agent.hub.latest is not None)
        agent.stop_event.set()  # stop the schedule; take stills by hand
        big = {"pad": "x"}
        jpeg = b"\xff\xd8" + b"\x00" * 400_000
        moment = agent.moment()
        first = agent.store.seal("still", moment, media=jpeg, media_type="image/jpeg", ext="jpg", extra=big)
        agent.store.seal("still", moment, media=jpeg, media_type="image/jpeg", ext="jpg", extra=big)
        # nothing delivered or anchored (no uplink): the vault refuses instead of deleting evidence
        from agent.evidence.vault import VaultFullError

        with pytest.raises(VaultFullError):
            agent.store.seal("still", moment, media=jpeg, media_type="image/jpeg", ext="jpg")
        assert Path(first.media_path or "").exists()
        # once the oldest is delivered and anchored, it may go — and the eviction is sealed first
        agent.evictable = lambda row: row.seq == first.seq  # type: ignore[method-assign]
        agent.store.seal("still", moment, media=jpeg, media_type="image/jpeg", ext="jpg")
        assert not Path(first.media_path or "").exists()
    finally:
        agent.close()
    report = verify(tmp_path / "vault")
    assert report.kinds["event"] >= 1
    assert any("evicted" in w["warning"] for w in report.warnings)


def test_picamera2_agent_records_native_h264_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """capture.backend = picamera2: the camera encodes the main stream, the hub carries lores frames."""
    from tests.support import picamera2_fake as fake

    fake.install(monkeypatch)
    agent = make_agent(tmp_path, capture={"backend": "picamera2", "width": 320, "height": 240, "fps": 10,
                                          "still_interval_s": 0.5},
                       video={"segment_seconds": 1.0, "fragment_seconds": 0.5})
    try:
        agent.start()
        wait_for(lambda: sum(r.kind == "segment" for r in agent.vault.rows()) >= 2, 30)
        wait_for(lambda: any(r.kind == "still" for r in agent.vault.rows()), 30)
    finally:
        agent.close()
    from agent.video.verify_segments import segment_checker

    report = verify(tmp_path / "vault", checkers=[segment_checker()])
    assert report.kinds["segment"] >= 2 and report.kinds["still"] >= 1
    assert all(s["frames"] >= 1 for s in report.sections["segments"])

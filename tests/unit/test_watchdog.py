"""sd_notify over a real unix datagram socket standing in for systemd; watchdog stops when capture stalls."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.hardware.watchdog import SdNotifier, Watchdog, watchdog_interval_s


class FakeSystemd:
    """A bound SOCK_DGRAM socket: what systemd listens on for $NOTIFY_SOCKET."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(5.0)

    def recv(self) -> str:
        return self.sock.recv(4096).decode()

    def pending(self) -> list[str]:
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(5.0)
        return out


@pytest.fixture(params=["abstract", "path"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeSystemd]:
    if request.param == "abstract":
        address = f"@evidence-test-{uuid.uuid4().hex}"
    else:
        address = f"/tmp/evidence-notify-{uuid.uuid4().hex[:12]}.sock"  # short: sun_path is 108 bytes
    fake = FakeSystemd(address)
    yield fake
    fake.sock.close()
    if not address.startswith("@"):
        os.unlink(address)


def test_ready_then_fed_only_while_heartbeats_are_fresh(systemd: FakeSystemd) -> None:
    clock = ManualClock()
    wd = Watchdog(SdNotifier(systemd.address), clock, stale_after_s=10, interval_s=3600)
    wd.ready("capturing synthetic")
    assert systemd.recv().split("\n")[:2] == ["READY=1", "STATUS=capturing synthetic"]
    assert wd.tick() is True
    assert systemd.recv() == "WATCHDOG=1"
    clock.advance(5)
    wd.heartbeat()
    clock.advance(9)
    assert wd.tick() is True  # last beat 9 s ago
    assert systemd.recv() == "WATCHDOG=1"
    clock.advance(2)  # capture loop stalled: 11 s since the last frame
    assert wd.tick() is False
    assert wd.tick() is False
    assert systemd.pending() == ["STATUS=capture loop stalled for 11 s"]  # said once, never WATCHDOG=1
    wd.heartbeat()
    assert wd.tick() is True
    assert systemd.pending() == ["STATUS=capturing (recovered)", "WATCHDOG=1"]
    wd.close()
    assert systemd.recv() == "STOPPING=1\nSTATUS=stopping"
    assert wd.fed == 3


def test_thread_feeds_and_stops_on_close(systemd: FakeSystemd) -> None:
    wd = Watchdog(SdNotifier(systemd.address), ManualClock(), stale_after_s=10, interval_s=0.01)
    wd.start()
    assert systemd.recv() == "WATCHDOG=1"
    assert systemd.recv() == "WATCHDOG=1"
    wd.close()
    wd.close()
    msgs = systemd.pending()
    assert msgs[-1] == "STOPPING=1\nSTATUS=stopping"
    assert set(msgs[:-1]) <= {"WATCHDOG=1"}


def test_without_systemd_everything_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = SdNotifier()
    assert not n.enabled and n.notify("READY=1") is False
    wd = Watchdog(n, ManualClock(), interval_s=1)
    assert wd.tick() is True
    wd.close()


def test_missing_socket_is_logged_not_raised() -> None:
    assert SdNotifier("/tmp/no-such-notify-socket").notify("WATCHDOG=1") is False


def test_watchdog_interval_from_environment() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "2"}, pid=2) == 15.0
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "x"}) is None

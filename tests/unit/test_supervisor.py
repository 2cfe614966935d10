"""The supervisor: a worker's death wakes it; restart within bounds, else escalate once; health says since when."""

from __future__ import annotations

import threading

from agent.core.health import Health
from agent.core.supervisor import Death, Restart, Supervisor
from agent.core.threads import Worker, set_owner
from agent.hardware.watchdog import Watchdog


class FakeNotifier:
    """Records what would go to systemd."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def notify(self, *fields: str) -> bool:
        self.messages.extend(fields)
        return True

    def close(self) -> None:
        pass


def boom(_stopping: threading.Event) -> None:
    raise OSError("disk I/O error")


class Recorder:
    def __init__(self) -> None:
        self.escalated = threading.Event()
        self.reason = ""
        self.deaths: list[tuple[Death, str]] = []

    def escalate(self, reason: str) -> None:
        self.reason = reason
        self.escalated.set()

    def on_death(self, death: Death, action: str) -> None:
        self.deaths.append((death, action))


def test_unrestartable_death_escalates_once() -> None:
    rec = Recorder()
    sup = Supervisor("t", escalate=rec.escalate, on_death=rec.on_death)
    sup.start()
    sup.own()
    try:
        w = Worker("essential", boom)
        w.start()
        assert rec.escalated.wait(10)
        assert "essential" in rec.reason and "disk I/O error" in rec.reason
        assert rec.deaths[0][1] == "exit" and sup.failed == rec.reason
        assert not sup.health.healthy()
        assert sup.health.report()["parts"]["essential"]["ok"] is False
    finally:
        set_owner(None)
        sup.close()


def test_restart_with_backoff_then_escalate_after_the_bound() -> None:
    rec = Recorder()
    sup = Supervisor("t", escalate=rec.escalate, on_death=rec.on_death)
    restarted: list[Worker] = []

    def restart() -> None:
        w = Worker("flaky", boom)
        restarted.append(w)
        w.start()

    sup.restartable("flaky", Restart(restart, backoff_s=(0.01, 0.02), max_restarts=3, window_s=60))
    sup.start()
    sup.own()
    try:
        Worker("flaky", boom).start()
        assert rec.escalated.wait(20)
        assert len(restarted) == 3 and sup.restarts == 3
        assert [a for _, a in rec.deaths] == ["restart"] * 3 + ["exit"]
    finally:
        set_owner(None)
        sup.close()


def test_worker_started_by_a_worker_has_the_same_owner() -> None:
    rec = Recorder()
    sup = Supervisor("t", escalate=rec.escalate)
    sup.start()
    sup.own()
    try:
        def parent(_stopping: threading.Event) -> None:
            Worker("child", boom).start()

        Worker("parent", parent).start()
        assert rec.escalated.wait(10) and "child" in rec.reason
    finally:
        set_owner(None)
        sup.close()


def test_no_owner_only_logs() -> None:
    set_owner(None)
    w = Worker("orphan", boom)
    w.start()
    w.join(5)
    assert isinstance(w.error, OSError)


def test_health_since_moves_only_on_a_flip() -> None:
    now = [100.0]
    h = Health(mono=lambda: now[0], wall_ns=lambda: 0)
    h.fail("outbox", "a")
    now[0] = 110.0
    h.fail("outbox", "b")
    st = h.unhealthy()["outbox"]
    assert st.since_mono == 100.0 and st.reason == "b"
    h.ok("outbox")
    assert h.healthy() and h.report()["ok"] is True


def test_watchdog_withholds_while_a_part_is_unhealthy() -> None:
    from agent.core.clock import ManualClock

    notifier = FakeNotifier()
    bad: list[str | None] = ["outbox: dispatcher not running"]
    wd = Watchdog(notifier,  # type: ignore[arg-type]
                   ManualClock(), stale_after_s=10, interval_s=1, healthy=lambda: bad[0])
    wd.heartbeat()
    assert wd.tick() is False and wd.fed == 0
    assert any("unhealthy" in m for m in notifier.messages)
    bad[0] = None
    assert wd.tick() is True and wd.fed == 1

"""The one thread helper: named, stoppable, and loud when a thread refuses to end."""

from __future__ import annotations

import threading

import pytest

from agent.core.threads import Worker, ZombieThread, join_or_raise, stop_all


def _loop(stopping: threading.Event, ticks: list[int]) -> None:
    while not stopping.wait(0.01):
        ticks.append(1)


def _hang(stopping: threading.Event, release: threading.Event) -> None:
    release.wait()  # ignores ``stopping``: a hung driver read


def test_worker_is_named_daemon_and_stops() -> None:
    ticks: list[int] = []
    w = Worker("ticker", _loop, ticks)
    assert w.name == "ticker" and w.daemon
    w.start()
    w.stop(5)
    assert not w.is_alive() and w.stopping.is_set() and w.error is None


def test_stop_is_idempotent_and_safe_before_start() -> None:
    w = Worker("never-started", _loop, [])
    w.stop(1)  # not started: nothing to join
    w.stop(1)
    assert w.stopping.is_set()


def test_stop_raises_zombie_thread_for_a_thread_that_does_not_end() -> None:
    release = threading.Event()
    w = Worker("stuck-camera", _hang, release)
    w.start()
    with pytest.raises(ZombieThread, match="stuck-camera"):
        w.stop(0.05)
    release.set()
    w.stop(5)  # once it ends, stop() succeeds
    assert not w.is_alive()


def test_shared_stop_event_is_used() -> None:
    shared = threading.Event()
    w = Worker("shared", _loop, [], stopping=shared)
    w.start()
    shared.set()  # the owner's own event ends the loop
    w.join(5)
    assert not w.is_alive() and w.stopping is shared


def test_exception_in_target_is_kept_for_the_owner() -> None:
    def boom(stopping: threading.Event) -> None:
        raise ValueError("bad frame")

    w = Worker("boom", boom)
    w.start()
    w.join(5)
    assert isinstance(w.error, ValueError)
    w.stop(1)


def test_stop_from_inside_the_thread_does_not_deadlock() -> None:
    done = threading.Event()

    def self_stop(stopping: threading.Event) -> None:
        threading.current_thread().stop(1)  # type: ignore[attr-defined]
        done.set()

    w = Worker("self-stop", self_stop)
    w.start()
    assert done.wait(5)
    w.stop(5)


def test_join_or_raise() -> None:
    join_or_raise(None)
    release = threading.Event()
    t = threading.Thread(target=release.wait, name="paho-loop", daemon=True)
    t.start()
    with pytest.raises(ZombieThread, match="paho-loop"):
        join_or_raise(t, 0.05)
    release.set()
    join_or_raise(t, 5)
    assert not t.is_alive()


def test_stop_all_joins_the_rest_and_names_every_zombie() -> None:
    release = threading.Event()
    good = Worker("good", _loop, [])
    stuck = Worker("stuck", _hang, release)
    for w in (stuck, good):
        w.start()
    with pytest.raises(ZombieThread, match="'stuck'"):
        stop_all([stuck, good], 0.05)
    assert not good.is_alive()  # a hung thread never keeps the others running
    release.set()
    stop_all([stuck, good], 5)


def test_every_agent_thread_is_a_worker() -> None:
    """No hand-made threads or unchecked joins come back: threads start as Workers, joins go through stop()."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "agent"
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "core" / "threads.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = ast.unparse(node.func.value)
            if (node.func.attr == "Thread" and owner == "threading") or (
                    node.func.attr == "join" and owner.lower().endswith(("thread", "worker", "t"))
                    and not isinstance(node.func.value, ast.Constant)):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []

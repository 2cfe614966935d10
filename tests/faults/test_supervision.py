"""Supervision through the real processes: a worker that dies is restarted or the process exits non-zero.

Faults are real ones, not hooks: the outbox database (or the ingest's store) lives on a small tmpfs the test
mounts and then fills, so every write fails with "database or disk is full" (ENOSPC), as on a full or failing
SD card. Transient = space returns while the process runs; permanent = it does not, the process must exit
non-zero (``Restart=`` would bring it back) and the test plays systemd: it frees the space and starts the
process again. Every sealed item must reach the officer's ingest in the end. Figures in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.supervisor import EXIT_SUPERVISION
from agent.wire.topics import DeviceTopics
from tests.faults.conftest import need_mosquitto
from tests.faults.rig import DEVICE, SITE, Rig, received_complete, received_seqs
from tests.faults.test_disk_full import fill
from tests.support.broker import Mosquitto
from tests.support.helpers import wait_until

FIGURES: dict[str, Any] = {}
ESCALATE_BOUND_S = 60.0  # generous on a loaded CI machine; the figure printed is what was measured


def tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs the test fills to make every write on it fail; skipped where mounting needs root."""
    yield from tmpfs(tmp_path / "small", "4m")


def break_items(rig: Rig) -> None:
    """The vault's items folder becomes unusable: a file stands where it was (every new seal: ENOTDIR,
    every media read: ENOENT); what it held is kept aside, untouched."""
    (rig.vault / "items").rename(rig.vault / "items.aside")
    (rig.vault / "items").write_bytes(b"")


def repair_items(rig: Rig) -> None:
    (rig.vault / "items").unlink()
    (rig.vault / "items.aside").rename(rig.vault / "items")


def log_text(rig: Rig) -> str:
    return rig.log.read_text(errors="replace") if rig.log.exists() else ""


def newest_seq(rig: Rig) -> int:
    recs = rig.sealed()
    return int(recs[-1]["seq"]) if recs else -1


def internal_errors(rig: Rig) -> list[dict[str, Any]]:
    return [r["extra"] for r in rig.sealed() if r["kind"] == "event" and r["extra"].get("type") == "internal_error"]


class FakeSystemd:
    """The ``$NOTIFY_SOCKET`` datagram socket systemd listens on; collects what the agent tells it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path), "WATCHDOG_USEC": "2000000"}  # keep-alive every 1 s

    def read(self) -> list[str]:
        while True:
            try:
                self.messages.extend(self.sock.recv(4096).decode().split("\n"))
            except BlockingIOError:
                return self.messages

    def close(self) -> None:
        self.sock.close()


def retained_status(broker: Mosquitto) -> dict[str, Any]:
    """The device's retained status document, read as an officer would."""
    topic = DeviceTopics(SITE, DEVICE).status
    res = subprocess.run(["mosquitto_sub", *broker.client_args("officer-alice"), "-t", topic, "-C", "1", "-W", "10"],
                         capture_output=True, text=True, timeout=30)
    return json.loads(res.stdout) if res.stdout.strip() else {}


def outbox_rig(root: Path, broker: Mosquitto, fs: Path, env: dict[str, str] | None = None) -> Rig:
    rig = Rig(root, broker=broker, extra={"uplink": {"outbox_path": str(fs / "outbox.sqlite")}}, env=env or {})
    rig.start_ingest()
    rig.start_agent()
    assert wait_until(lambda: len(received_seqs(rig)) >= 3, 90), "nothing delivered before the fault"
    return rig


def all_delivered(rig: Rig, timeout: float = 120) -> bool:
    """Every item sealed so far (records and media) is at the ingest."""
    upto = newest_seq(rig)
    return wait_until(lambda: received_complete(rig, upto), timeout)


def test_outbox_disk_fault_transient_restarts_the_dispatcher(tmp_path: Path, tls_broker: Mosquitto,
                                                             small_fs: Path) -> None:
    need_mosquitto()
    systemd = FakeSystemd(tmp_path / "notify.sock")
    rig = outbox_rig(tmp_path / "device", tls_broker, small_fs, env=systemd.env())
    try:
        assert wait_until(lambda: "WATCHDOG=1" in systemd.read(), 30), "the watchdog was never fed"
        ballast = fill(small_fs)
        assert wait_until(lambda: "database or disk is full" in log_text(rig), 60), "the fault never hit"
        n0 = newest_seq(rig)
        assert wait_until(lambda: newest_seq(rig) >= n0 + 10, 60)  # seconds of recording under the fault
        # frames flow, yet systemd is told the service is unhealthy and is no longer fed
        assert wait_until(lambda: any(m.startswith("STATUS=unhealthy") and "outbox" in m for m in systemd.read()),
                          30), systemd.messages[-5:]
        told = next(i for i, m in enumerate(systemd.messages) if m.startswith("STATUS=unhealthy"))
        status: dict[str, Any] = {}

        def outbox_unhealthy() -> bool:
            status.update(retained_status(tls_broker).get("health", {}).get("parts", {}).get("outbox") or {})
            return status.get("ok") is False

        assert wait_until(outbox_unhealthy, 60, step=1.0), f"the retained status never said so: {status}"
        FIGURES["outbox transient: retained health while failing"] = status
        assert "WATCHDOG=1" not in systemd.read()[told:], "fed while unhealthy"
        ballast.unlink()
        freed = time.monotonic()
        assert rig.proc is not None and rig.proc.poll() is None, "a transient fault must not end the process"
        upto = newest_seq(rig)
        assert wait_until(lambda: received_complete(rig, upto), 90), \
            f"not delivered after the disk recovered: {len(received_seqs(rig))} of {upto + 1} at the ingest"
        FIGURES["outbox transient: s from space back to all delivered"] = round(time.monotonic() - freed, 1)
        mark = len(systemd.read())
        assert wait_until(lambda: "WATCHDOG=1" in systemd.read()[mark:], 30), "the watchdog was not fed again"
        stop_and_drain(rig)
        errs = internal_errors(rig)
        assert any(e.get("part") == "outbox-dispatch" for e in errs), errs
        FIGURES["outbox transient: sealed / delivered"] = (newest_seq(rig) + 1, len(received_seqs(rig)))
    finally:
        rig.close()
        systemd.close()
    print("supervision figures:", FIGURES)


def test_outbox_disk_fault_permanent_exits_then_restart_delivers(tmp_path: Path, tls_broker: Mosquitto,
                                                                 small_fs: Path) -> None:
    need_mosquitto()
    rig = outbox_rig(tmp_path / "device", tls_broker, small_fs)
    try:
        ballast = fill(small_fs)
        assert wait_until(lambda: "database or disk is full" in log_text(rig), 60), "the fault never hit"
        hit = time.monotonic()
        assert rig.proc is not None
        try:
            rc = rig.proc.wait(ESCALATE_BOUND_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"alive but not delivering for {ESCALATE_BOUND_S:g} s: the process must exit "
                                 "non-zero so systemd restarts it") from None
        FIGURES["outbox permanent: s alive-but-useless before exit"] = round(time.monotonic() - hit, 1)
        assert rc == EXIT_SUPERVISION, f"a process that gave up must exit {EXIT_SUPERVISION}, not {rc}"
        ballast.unlink()  # the restart (here: the space) brings it back, as systemd's Restart= would
        rig.start_agent()
        assert all_delivered(rig, 120), f"{len(received_seqs(rig))} of {newest_seq(rig) + 1} at the ingest"
        stop_and_drain(rig)
        assert any(e.get("part") == "outbox-dispatch" for e in internal_errors(rig))
        FIGURES["outbox permanent: sealed / delivered"] = (newest_seq(rig) + 1, len(received_seqs(rig)))
    finally:
        rig.close()
    print("supervision figures:", FIGURES)


def ingest_rig(root: Path, broker: Mosquitto, fs: Path) -> Rig:
    """The officer's ingest stores onto the small filesystem; the device is healthy."""
    rig = Rig(root, broker=broker)
    rig.received = fs / "received"
    rig.start_ingest()
    rig.start_agent()
    assert wait_until(lambda: len(received_seqs(rig)) >= 3, 90), "nothing delivered before the fault"
    return rig


def ingest_log(rig: Rig) -> str:
    return rig.ingest_log.read_text(errors="replace") if rig.ingest_log.exists() else ""


def test_ingest_store_fault_transient_retries_then_stores(tmp_path: Path, tls_broker: Mosquitto,
                                                          small_fs: Path) -> None:
    need_mosquitto()
    rig = ingest_rig(tmp_path / "device", tls_broker, small_fs)
    try:
        ballast = fill(small_fs)
        assert wait_until(lambda: "No space left" in ingest_log(rig) or "disk is full" in ingest_log(rig), 60), \
            "the fault never hit the ingest"
        n0 = newest_seq(rig)
        assert wait_until(lambda: newest_seq(rig) >= n0 + 10, 60)
        ballast.unlink()
        freed = time.monotonic()
        assert rig.ingest_proc is not None and rig.ingest_proc.poll() is None, "a transient fault must not end it"
        upto = newest_seq(rig)
        assert wait_until(lambda: received_complete(rig, upto), 90), \
            f"not stored after the disk recovered: {len(received_seqs(rig))} of {upto + 1}"
        FIGURES["ingest transient: s from space back to all stored"] = round(time.monotonic() - freed, 1)
        stop_and_drain(rig)
        rep = rig.stop_ingest()
        assert rep["missing"] == [] and rep["incomplete"] == [], rep
        FIGURES["ingest transient: sealed / stored"] = (newest_seq(rig) + 1, len(received_seqs(rig)))
    finally:
        rig.close()
    print("supervision figures:", FIGURES)


def test_ingest_store_fault_permanent_exits_then_restart_stores(tmp_path: Path, tls_broker: Mosquitto,
                                                                small_fs: Path) -> None:
    need_mosquitto()
    rig = ingest_rig(tmp_path / "device", tls_broker, small_fs)
    try:
        ballast = fill(small_fs)
        assert wait_until(lambda: "No space left" in ingest_log(rig) or "disk is full" in ingest_log(rig), 60), \
            "the fault never hit the ingest"
        hit = time.monotonic()
        assert rig.ingest_proc is not None
        try:
            rc = rig.ingest_proc.wait(ESCALATE_BOUND_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"ingest alive but storing nothing for {ESCALATE_BOUND_S:g} s: it must exit "
                                 "non-zero so systemd restarts it") from None
        FIGURES["ingest permanent: s alive-but-useless before exit"] = round(time.monotonic() - hit, 1)
        assert rc == EXIT_SUPERVISION, f"an ingest that gave up must exit {EXIT_SUPERVISION}, not {rc}"
        ballast.unlink()
        rig.start_ingest()  # same client id: the broker kept the session's queue
        assert all_delivered(rig, 120), f"{len(received_seqs(rig))} of {newest_seq(rig) + 1} at the ingest"
        stop_and_drain(rig)
        rep = rig.stop_ingest()
        assert rep["missing"] == [] and rep["incomplete"] == [], rep
        FIGURES["ingest permanent: sealed / stored"] = (newest_seq(rig) + 1, len(received_seqs(rig)))
    finally:
        rig.close()
    print("supervision figures:", FIGURES)


def vault_rig(root: Path, broker: Mosquitto) -> Rig:
    rig = Rig(root, broker=broker)
    rig.start_ingest()
    rig.start_agent()
    assert wait_until(lambda: len(received_seqs(rig)) >= 3, 90), "nothing delivered before the fault"
    return rig


def stop_and_drain(rig: Rig) -> None:
    """Everything sealed reaches the ingest while the agent runs; a clean stop; a last short run that drains
    (what the stop sealed: the open segment); then everything is at the ingest."""
    assert all_delivered(rig), f"{len(received_seqs(rig))} of {newest_seq(rig) + 1} at the ingest while running"
    assert rig.stop_agent() == 0
    res = rig.cli("run", "--config", str(rig.config), "--seconds", "1", "--drain-timeout", "90")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert all_delivered(rig), f"{len(received_seqs(rig))} of {newest_seq(rig) + 1} at the ingest"


def finish_and_check(rig: Rig) -> None:
    """stop_and_drain, then the ingest's report misses nothing and the device vault verifies."""
    stop_and_drain(rig)
    rep = rig.stop_ingest()
    assert rep["missing"] == [] and rep["incomplete"] == [], rep
    doc = rig.verify_json(rig.vault, anchors=False)
    assert doc["ok"], doc["problems"][:5]


def test_vault_fault_transient(tmp_path: Path, tls_broker: Mosquitto) -> None:
    """The vault's items folder is unusable for a while: seals fail, the process either carries on once it
    is writable again or exits non-zero within the bound; after the (possible) restart all is delivered."""
    need_mosquitto()
    rig = vault_rig(tmp_path / "device", tls_broker)
    try:
        tls_broker.stop()  # media piles up unsent, so the outbox reads it while the folder is unusable
        n = newest_seq(rig)
        assert wait_until(lambda: newest_seq(rig) >= n + 5, 60)
        before = newest_seq(rig)
        break_items(rig)
        assert wait_until(lambda: log_text(rig).count("Not a directory") >= 3, 60), "the fault never hit"
        # a whole segment is lost: the recording has a hole the vault must explain (a storage_error event)
        assert wait_until(lambda: "sealing ClosedSegment failed" in log_text(rig), 60), "no segment seal failed"
        tls_broker.start()
        assert wait_until(lambda: "unreadable" in log_text(rig), 60), "the outbox never read media in the fault"
        repair_items(rig)
        back = time.monotonic()
        proc = rig.proc
        assert proc is not None
        assert wait_until(lambda: newest_seq(rig) > before + 3 or proc.poll() is not None, 60), \
            "neither sealing again nor exited after the vault came back"
        rc = proc.poll()
        FIGURES["vault transient: outcome"] = "carried on" if rc is None else f"exit {rc}, restarted"
        FIGURES["vault transient: s until sealing again or exit"] = round(time.monotonic() - back, 1)
        if rc is not None:
            assert rc != 0
            rig.start_agent()
        n = newest_seq(rig)
        assert wait_until(lambda: newest_seq(rig) > n + 3, 60)
        finish_and_check(rig)
        lost = [r["extra"] for r in rig.sealed() if r["kind"] == "event" and r["extra"].get("type") == "storage_error"]
        assert lost and lost[0]["not_sealed"].get("segment"), lost
        FIGURES["vault transient: not sealed during the fault"] = lost[0]["not_sealed"]
        FIGURES["vault transient: sealed / delivered"] = (newest_seq(rig) + 1, len(received_seqs(rig)))
    finally:
        rig.close()
    print("supervision figures:", FIGURES)


def test_vault_fault_permanent_exits_then_restart_delivers(tmp_path: Path, tls_broker: Mosquitto) -> None:
    need_mosquitto()
    rig = vault_rig(tmp_path / "device", tls_broker)
    try:
        break_items(rig)
        assert wait_until(lambda: "Not a directory" in log_text(rig), 60), "the fault never hit"
        hit = time.monotonic()
        assert rig.proc is not None
        try:
            rc = rig.proc.wait(ESCALATE_BOUND_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"alive but sealing nothing for {ESCALATE_BOUND_S:g} s: the process must exit "
                                 "non-zero so systemd restarts it") from None
        FIGURES["vault permanent: s alive-but-useless before exit"] = round(time.monotonic() - hit, 1)
        assert rc == EXIT_SUPERVISION, rc
        repair_items(rig)  # fsck and a reboot, in the field
        n = newest_seq(rig)
        rig.start_agent()
        assert wait_until(lambda: newest_seq(rig) > n + 3, 60)
        finish_and_check(rig)
        FIGURES["vault permanent: sealed / delivered"] = (newest_seq(rig) + 1, len(received_seqs(rig)))
    finally:
        rig.close()
    print("supervision figures:", FIGURES)


@pytest.mark.parametrize("repair", ["after_failure", "after_exit"])
def test_encoder_output_fault_exits_then_restart_records(tmp_path: Path, tls_broker: Mosquitto, repair: str) -> None:
    """The encoder's output folder (vault/staging) becomes unusable: the recorder stops. It is not restarted
    in-process (its encoder state is in memory), so the process must exit non-zero within the bound, whether
    the folder comes back at once (transient) or only before the restart (permanent); after the restart
    segments are recorded again and everything sealed is delivered."""
    need_mosquitto()
    rig = vault_rig(tmp_path / "device", tls_broker)
    staging = rig.vault / "staging"
    try:
        assert wait_until(lambda: any(r["kind"] == "segment" for r in rig.sealed()), 60), "no segment sealed"
        staging.rename(rig.vault / "staging.aside")
        staging.write_bytes(b"")
        assert wait_until(lambda: "Not a directory" in log_text(rig), 60), "the fault never hit"
        hit = time.monotonic()
        if repair == "after_failure":
            staging.unlink()
            (rig.vault / "staging.aside").rename(staging)
        assert rig.proc is not None
        try:
            rc = rig.proc.wait(ESCALATE_BOUND_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"alive without a recorder for {ESCALATE_BOUND_S:g} s: the process must exit "
                                 "non-zero so systemd restarts it") from None
        FIGURES[f"encoder {repair}: s alive-but-useless before exit"] = round(time.monotonic() - hit, 1)
        assert rc == EXIT_SUPERVISION, rc
        if repair == "after_exit":
            staging.unlink()
            (rig.vault / "staging.aside").rename(staging)
        segments = sum(r["kind"] == "segment" for r in rig.sealed())
        rig.start_agent()
        assert wait_until(lambda: sum(r["kind"] == "segment" for r in rig.sealed()) > segments + 1, 90), \
            "no segment recorded after the restart"
        finish_and_check(rig)
        FIGURES[f"encoder {repair}: sealed / delivered"] = (newest_seq(rig) + 1, len(received_seqs(rig)))
    finally:
        rig.close()
    print("supervision figures:", FIGURES)


def test_broker_gone_is_idle_not_unhealthy(tmp_path: Path, tls_broker: Mosquitto) -> None:
    """The MQTT link down for longer than the unhealthy bound: the outbox is legitimately idle, so the agent
    keeps recording, keeps feeding the watchdog and does not exit; once the broker is back all is delivered.
    (Transient link faults -- outage, flapping, a broker crash -- are in test_broker_faults.py.)"""
    from agent.device.parts import UNHEALTHY_EXIT_S

    need_mosquitto()
    systemd = FakeSystemd(tmp_path / "notify.sock")
    rig = Rig(tmp_path / "device", broker=tls_broker, env=systemd.env())
    rig.start_ingest()
    rig.start_agent()
    try:
        assert wait_until(lambda: len(received_seqs(rig)) >= 3, 90), "nothing delivered before the fault"
        tls_broker.stop()
        n = newest_seq(rig)
        mark = len(systemd.read())
        assert rig.proc is not None
        proc = rig.proc
        # must not give up on a broker outage (the socket is read meanwhile, as systemd does)
        assert not wait_until(lambda: bool(systemd.read()) and proc.poll() is not None, UNHEALTHY_EXIT_S + 10)
        assert newest_seq(rig) > n + 10, "recording stopped while the broker was away"
        assert "WATCHDOG=1" in systemd.read()[mark:], "systemd was not fed during a broker outage"
        assert not any(m.startswith("STATUS=unhealthy") for m in systemd.read()[mark:]), systemd.messages[-5:]
        tls_broker.start()
        assert all_delivered(rig, 120), f"{len(received_seqs(rig))} of {newest_seq(rig) + 1} after the broker returned"
        finish_and_check(rig)
        FIGURES["broker gone 40 s: sealed / delivered"] = (newest_seq(rig) + 1, len(received_seqs(rig)))
    finally:
        rig.close()
        systemd.close()
    print("supervision figures:", FIGURES)

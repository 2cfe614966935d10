"""Zero-loss delivery on a real Mosquitto: end to end, a broker outage, kill -9 with a backlog."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.signing.verify import verify
from agent.wire.mqtt import MqttLink
from tests.support.broker import Mosquitto
from tests.support.uplink_device import TestDevice, TestIngest, moment

REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = float(os.environ.get("UPLINK_OUTAGE_S", "30"))


def test_sealed_items_arrive_verified(mosquitto: Mosquitto, tmp_path: Path) -> None:
    ingest = TestIngest(tmp_path / "out", mosquitto.mqtt_config("ingest-1", client_id="ingest-e2e"))
    dev = TestDevice(tmp_path / "dev", "dev-e2e", mosquitto.mqtt_config("dev-e2e"), chunk_bytes=8192)
    try:
        for size in (10, 8192, 8193, 120_000):  # chunk boundaries: one, exactly one, two, many
            dev.still(size)
        dev.sealer.seal("event", moment(), extra={"what": "door opened"})  # an alert kind
        assert dev.uplink.drain(20), dev.uplink.outbox.stats()
        assert ingest.wait_records("dev-e2e", 6, 20), ingest.ingest.report()
        rep = ingest.ingest.report()["dev-e2e"]
        assert rep.missing == [] and rep.incomplete == [] and rep.refused == 0
        assert rep.availability == "online"
        assert rep.status is not None and rep.status["device"] == "dev-e2e"  # retained health document
        verify(tmp_path / "out" / "dev-e2e")  # the officer-side copy is a verifiable vault
        assert dev.uplink.outbox.is_delivered(dev.sealer.vault.last()[1], "record")  # type: ignore[index]
    finally:
        dev.close()
        ingest.close()


@pytest.mark.slow
def test_broker_outage_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """Broker down for OUTAGE_S (30 s by default) while the device keeps sealing; all of it arrives."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    ingest = TestIngest(tmp_path / "out", broker.mqtt_config("ingest-1", client_id="ingest-outage"))
    dev = TestDevice(tmp_path / "dev", "dev-outage", broker.mqtt_config("dev-outage"), chunk_bytes=16384)
    try:
        for _ in range(5):
            dev.still(40_000)
        broker.stop()
        down_at = time.monotonic()
        while time.monotonic() - down_at < OUTAGE_S:
            dev.still(40_000)  # recording goes on while the uplink is down
            time.sleep(1.0)
        assert not dev.uplink.link.connected
        backlog = dev.uplink.outbox.stats().pending
        assert backlog > 0
        broker.start()
        sealed = dev.sealer.next_seq
        assert dev.uplink.drain(60), dev.uplink.outbox.stats()
        assert ingest.wait_records("dev-outage", sealed, 30), ingest.ingest.report()
        rep = ingest.ingest.report()["dev-outage"]
        assert rep.max_seq == sealed - 1 and rep.missing == [] and rep.incomplete == [] and rep.refused == 0
        verify(tmp_path / "out" / "dev-outage")
    finally:
        dev.close()
        ingest.close()
        broker.stop()


def _wait_log(broker: Mosquitto, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in broker.log_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the broker log")


def test_kill9_with_backlog_then_restart_drains(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """The publishing process dies by SIGKILL mid-upload; its restart sends the rest; `ingest` CLI stores all."""
    report = tmp_path / "report.json"
    ing = mosquitto.pki.client("ingest-1") if mosquitto.pki else None
    assert ing is not None
    cli = subprocess.Popen(
        [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", mosquitto.url, "--out",
         str(tmp_path / "out"), "--share", "kill9", "--site", "site-1", "--client-id", "ingest-cli-kill9",
         "--cafile", str(ing.ca), "--cert", str(ing.cert), "--key", str(ing.key), "--report", str(report)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_log(mosquitto, "as ingest-cli-kill9", 15)
        time.sleep(0.5)
        mqtt = mosquitto.mqtt_config("dev-kill9").model_dump_json()
        args = [sys.executable, "-m", "tests.support.uplink_device", "--root", str(tmp_path / "dev"),
                "--device", "dev-kill9", "--mqtt", mqtt]
        child = subprocess.Popen([*args, "--stills", "12", "--size", "400000"], cwd=REPO,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        first = json.loads(child.stdout.readline())
        watcher = MqttLink(mosquitto.mqtt_config("officer-alice", client_id="watch-kill9", session_expiry_s=0))
        states: list[bytes] = []
        watcher.start()
        assert watcher.wait_connected(10)
        watcher.subscribe_wait("evidence/site-1/dev-kill9/availability", lambda m: states.append(m.payload))
        os.kill(child.pid, signal.SIGKILL)  # mid-upload: 4.8 MB in 16 KB chunks with a 64 KB window
        child.wait(10)
        deadline = time.monotonic() + 10
        while states[-1:] != [b"offline"] and time.monotonic() < deadline:
            time.sleep(0.05)
        watcher.close()
        assert states[0] == b"online" and states[-1] == b"offline"  # retained state, then the last will
        outbox_rows = _pending_rows(tmp_path / "dev" / "outbox.sqlite")
        assert outbox_rows > 0, "the kill should leave a backlog"
        again = subprocess.run([*args, "--drain", "60"], cwd=REPO, capture_output=True, text=True, timeout=90)
        assert again.returncode == 0, again.stderr[-2000:]
        sealed = json.loads(again.stdout.splitlines()[0])["sealed"]
        assert sealed == first["sealed"] + 1  # the restart record of the second run
        time.sleep(1.0)
    finally:
        cli.send_signal(signal.SIGTERM)
        _out, err = cli.communicate(timeout=20)
    rep = json.loads(report.read_text())["devices"]["dev-kill9"]
    assert rep["missing"] == [] and rep["incomplete"] == [] and rep["refused"] == 0, (rep, err[-2000:])
    assert rep["max_seq"] == sealed - 1
    assert cli.returncode == 0
    verify(tmp_path / "out" / "dev-kill9")


def _pending_rows(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    finally:
        db.close()


def test_shared_subscription_workers_split_the_load(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Two ingest workers in one $share group, one OUT: each gets part of the stream, together all of it."""
    out = tmp_path / "out"
    workers = [TestIngest(out, mosquitto.mqtt_config("ingest-1", client_id=f"ingest-share-{i}"), share="split")
               for i in range(2)]
    dev = TestDevice(tmp_path / "dev", "dev-share", mosquitto.mqtt_config("dev-share"), chunk_bytes=4096)
    try:
        for _ in range(6):
            dev.still(30_000)
        assert dev.uplink.drain(30), dev.uplink.outbox.stats()
        assert workers[0].wait_records("dev-share", 7, 20), workers[0].ingest.report()
        counts = [w.ingest.messages for w in workers]
        assert all(c > 0 for c in counts), counts
        rep = workers[1].ingest.report()["dev-share"]
        assert rep.missing == [] and rep.incomplete == [] and rep.refused == 0
        verify(out / "dev-share")
    finally:
        dev.close()
        for w in workers:
            w.close()

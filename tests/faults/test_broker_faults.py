"""Broker faults under the real agent process: outage, flapping, a crash that forgets every session, a packet
limit below the chunk size. Zero sealed items lost; drain times are printed (figures in docs/reliability.md).

``FAULT_SCALE=9`` stretches the CI outage (20 s) to three minutes and the flapping to 45 cycles.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.faults.conftest import FAULT_SCALE, need_mosquitto
from tests.faults.crash_loop import final_run
from tests.faults.rig import DEVICE, Rig, received_complete, wait_until
from tests.support.broker import Mosquitto
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa

OUTAGE_S = 20.0 * FAULT_SCALE
FLAPS = max(2, int(5 * FAULT_SCALE))
FIGURES: dict[str, Any] = {}


def newest_seq(rig: Rig) -> int:
    recs = rig.sealed()
    return int(recs[-1]["seq"]) if recs else -1


def outbox_pending(rig: Rig) -> int:
    """Entries the device has not yet had acknowledged (read-only look into its outbox)."""
    db = sqlite3.connect(f"file:{rig.root / 'outbox.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM entries WHERE state='pending'").fetchone()[0])
    finally:
        db.close()


def drain_time(rig: Rig, timeout: float = 120) -> dict[str, float]:
    """Seconds until the broker acknowledged the device's backlog (outbox empty), and until the officer's
    ingest holds everything sealed up to now (records and media; includes the ingest's own reconnect)."""
    upto, t = newest_seq(rig), time.monotonic()
    device = None
    while time.monotonic() - t < timeout:
        if device is None and outbox_pending(rig) == 0:
            device = round(time.monotonic() - t, 2)
        if received_complete(rig, upto):
            break
        time.sleep(0.1)
    assert received_complete(rig, upto), f"not delivered up to seq {upto}"
    return {"device_s": device if device is not None else round(time.monotonic() - t, 2),
            "ingest_s": round(time.monotonic() - t, 2)}


def finish(rig: Rig) -> dict[str, Any]:
    """Clean stop, a final in-process run that drains, then every sealed item must be at the ingest, verified."""
    assert rig.stop_agent() == 0
    drained, _ = final_run(rig)
    # the broker's acknowledgement to the device is not the ingest's store: wait for the ingest to hold it all
    upto = newest_seq(rig)
    assert wait_until(lambda: received_complete(rig, upto), 60), f"the ingest never stored up to seq {upto}"
    ingest = rig.stop_ingest()
    records = rig.sealed()
    assert drained
    assert ingest["missing"] == [] and ingest["incomplete"] == [] and ingest["refused"] == 0, ingest
    assert ingest["records"] == len(records)
    device, officer = rig.verify_json(rig.vault), rig.verify_json(rig.received / DEVICE)
    assert device["ok"] and officer["ok"], (device["problems"][:5], officer["problems"][:5])
    assert officer["items"] == device["items"] == len(records)
    return ingest


def start(rig: Rig) -> None:
    rig.start_ingest()
    rig.start_agent()
    assert wait_until(lambda: newest_seq(rig) >= 3, 30), f"agent did not start; see {rig.log}"


def test_outage_then_drain(tmp_path: Path, tls_broker: Mosquitto, tsa: LocalTsa, ledger: LocalLedger) -> None:
    rig = Rig(tmp_path / "device", broker=tls_broker, tsa=tsa, ledger=ledger, still_interval_s=0.2)
    try:
        start(rig)
        before = newest_seq(rig)
        tls_broker.stop()
        time.sleep(OUTAGE_S)
        backlog = newest_seq(rig) - before
        tls_broker.start()
        FIGURES["outage"] = {"outage_s": OUTAGE_S, "backlog_items": backlog, "drain_s": drain_time(rig)}
        finish(rig)
    finally:
        rig.close()
    print("broker outage:", json.dumps(FIGURES["outage"]))
    assert backlog > 10  # capture went on while the broker was away


def test_flapping_and_crash_without_persistence(tmp_path: Path, tls_broker: Mosquitto, tsa: LocalTsa,
                                                ledger: LocalLedger) -> None:
    rig = Rig(tmp_path / "device", broker=tls_broker, tsa=tsa, ledger=ledger, still_interval_s=0.2)
    try:
        start(rig)
        for _ in range(FLAPS):  # down 2 s, up 2 s
            tls_broker.stop()
            time.sleep(2.0)
            tls_broker.start()
            time.sleep(2.0)
        flap_drain = drain_time(rig)
        # A broker crash that forgets everything: sessions, the ingest's queue, retained messages.
        assert tls_broker.proc is not None
        tls_broker.proc.kill()
        tls_broker.proc.wait(10)
        tls_broker.proc = None
        shutil.rmtree(tls_broker.dir / "data")
        (tls_broker.dir / "data").mkdir()
        time.sleep(2.0)
        tls_broker.start()
        FIGURES["flapping"] = {"cycles": FLAPS, "drain_after_flapping_s": flap_drain,
                               "drain_after_wiped_restart_s": drain_time(rig)}
        finish(rig)
    finally:
        rig.close()
    print("broker flapping:", json.dumps(FIGURES["flapping"]))


def test_packet_limit_below_chunk_size(tmp_path: Path, tsa: LocalTsa, ledger: LocalLedger) -> None:
    """The broker advertises 16 KiB; the config asks for 64 KiB chunks; stills are several packets long."""
    need_mosquitto()
    broker = Mosquitto(tmp_path / "small-broker", max_packet_size=16 * 1024)
    broker.start()
    rig = Rig(tmp_path / "device", broker=broker, tsa=tsa, ledger=ledger, still_interval_s=0.3,
              extra={"capture": {"width": 640, "height": 480, "jpeg_quality": 95},
                     "uplink": {"chunk_bytes": 64 * 1024}})
    try:
        start(rig)
        time.sleep(3)
        FIGURES["packet_limit"] = {"max_packet": 16 * 1024, "chunk_bytes": 64 * 1024, "drain_s": drain_time(rig)}
        finish(rig)
        sizes = [r["media"]["size"] for r in rig.sealed() if r.get("media") and r.get("kind") == "still"]
        assert sizes and min(sizes) > 16 * 1024, "stills must span several packets for this test to mean anything"
        FIGURES["packet_limit"]["still_bytes_median"] = sorted(sizes)[len(sizes) // 2]
    finally:
        rig.close()
        broker.stop()
    print("packet limit:", json.dumps(FIGURES["packet_limit"]))


def test_record_larger_than_packet_limit_still_arrives(tmp_path: Path, tsa: LocalTsa, ledger: LocalLedger) -> None:
    need_mosquitto()
    broker = Mosquitto(tmp_path / "tiny-broker", max_packet_size=4096)
    broker.start()
    rig = Rig(tmp_path / "device", broker=broker, tsa=tsa, ledger=ledger, still_interval_s=0.5)
    try:
        start(rig)
        assert wait_until(lambda: any(r["kind"] == "receipt" for r in rig.sealed()), 20)
        upto = newest_seq(rig)
        delivered = wait_until(lambda: received_complete(rig, upto), 10, 0.2)
    finally:
        rig.close()
        broker.stop()
    assert delivered, "a receipt record over the packet limit never reached the ingest"

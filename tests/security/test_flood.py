"""A hostile device floods the fleet broker with 10 000 junk messages while a good device records.

The good device's evidence must arrive complete, the real `evidence-officer ingest` process must stay within
a bounded memory (peak RSS, read from /proc while it runs) and its report must name the hostile device.
Before: poison messages raised in the handler and stayed unacknowledged, so once the broker's in-flight
window was full nothing more arrived from anyone. Figures are printed (run with -s) — no timing asserts.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.support.fleet import Fleet, agent_cli
from tests.support.hostile import Device, raw_chunk, record_msg
from tests.support.uplink_device import TestDevice

JUNK = 10_000
STILLS = 15
RSS_BOUND_KB = 400 * 1024  # generous: the point is that it does not grow with the flood


def _peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _junk(evil: Device, n: int) -> list[tuple[str, bytes, tuple[tuple[str, str], ...]]]:
    rng = random.Random(11)
    template = evil.event()
    out = []
    for i in range(n):
        pick = i % 10
        if pick < 4:
            msg = record_msg(evil, rng.randbytes(rng.randint(1, 2000)))
        elif pick < 7:  # well-formed first halves of files that never complete
            msg = raw_chunk(evil, item=hashlib.sha256(b"%d" % i).hexdigest(), size=8192, total=2,
                            data=rng.randbytes(4096), seq=rng.randint(0, 10**6))
        elif pick == 7:
            msg = record_msg(evil, b"[" * 100_000)
        elif pick == 8:  # validly signed records at random seqs (its own namespace; the report must stay small)
            msg = record_msg(evil, evil.forge(template, seq=rng.randint(2, 10**9)))
        else:
            msg = raw_chunk(evil, size=2 * 10**9, total=1, seq=i)
        out.append((msg.topic, msg.payload, msg.user_props))
    return out


@pytest.mark.slow
def test_junk_flood_does_not_stop_a_good_device(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    evil = Device(tmp_path / "evil", "cam-evil", keys=fleet.key_dir("cam-evil"))
    junk = _junk(evil, JUNK)
    shutil.copytree(fleet.key_dir("cam-good"), tmp_path / "good" / "keys")
    ingest = fleet.ingest(out, idle=10.0, client_id="ingest-flood")
    peak = [0]
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            peak[0] = max(peak[0], _peak_rss_kb(ingest.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    good = TestDevice(tmp_path / "good", "cam-good", fleet.mqtt_config("cam-good"), chunk_bytes=16 * 1024)
    link = fleet.link("cam-evil", client_id="evil-flood")
    acked = threading.Semaphore(0)
    started = time.monotonic()
    try:
        def flood() -> None:
            for topic, payload, props in junk:
                link.publish(topic, payload, user_props=props, on_done=lambda _r: acked.release())

        flooder = threading.Thread(target=flood)
        flooder.start()
        for _ in range(STILLS):
            good.still(50_000)
            time.sleep(0.05)
        flooder.join(120)
        assert all(acked.acquire(timeout=120) for _ in range(JUNK)), "the broker did not take the flood"
        flood_s = time.monotonic() - started
        assert good.uplink.drain(180), "the good device could not deliver during the flood"
        report_text, _ = ingest.communicate(timeout=600)
    finally:
        watching.set()
        ingest.kill()
        link.close(offline=False)
        good.close()
        evil.close()
    report = json.loads(report_text)
    good_rep = report["devices"]["cam-good"]
    evil_rep = report["devices"]["cam-evil"]
    figures = {"junk_messages": JUNK, "flood_publish_s": round(flood_s, 1), "ingest_peak_rss_mb": peak[0] // 1024,
               "messages_handled": report["messages"], "slowest_message_ms": report["slowest_message_ms"],
               "slowest_topic": report["slowest_topic"], "evil_refused": evil_rep["refused"],
               "evil_refusals": evil_rep["refusals"], "evil_missing_count": evil_rep["missing_count"],
               "partials_dropped": evil_rep["partials_dropped"]}
    print("FLOOD FIGURES", json.dumps(figures, sort_keys=True))
    (tmp_path.parent / "flood-figures.json").write_text(json.dumps(figures, indent=1))
    assert good_rep["records"] == STILLS + 1 and good_rep["missing"] == [] and good_rep["incomplete"] == []
    assert good_rep["refused"] == 0
    assert "cam-evil" in report["findings"] and "cam-good" not in report["findings"]
    assert report["messages"] >= JUNK + 2 * (STILLS + 1)
    assert 0 < peak[0] < RSS_BOUND_KB, f"ingest peak RSS {peak[0]} kB"
    assert len(evil_rep["missing"]) <= 1000
    partial = out / ".ingest" / "partial" / "cam-evil"
    assert len(list(partial.iterdir())) <= 32
    quarantine = out / ".ingest" / "quarantine" / "cam-evil"
    assert len(list(quarantine.glob("*.json"))) <= 2000
    res = agent_cli("verify", str(out / "cam-good"), "--ca", str(fleet.ca))
    assert res.returncode == 0, res.stdout

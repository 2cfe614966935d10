"""Uplink throughput on one local Mosquitto, same run, same bytes (DESIGN-NOTES §4).

Three ways to move the same media files to the broker at QoS 1 (no subscriber, as in the notes):

* ``mosquitto_pub``: one process per file (what an integrator would script);
* bare paho: a publish loop over the outbox's own chunks with the same in-flight window (the
  ceiling of the Python stack);
* the outbox: a backlog of sealed items (caught up from the vault, as after an outage) drained
  through SQLite, chunking, hashing and PUBACK bookkeeping.

Bare paho and the outbox run ``--runs`` times, interleaved (bare, outbox, bare, ...), each outbox run
from a fresh outbox database; the medians are compared (the machine's other load shows in the spread).

Usage: ``python benchmarks/uplink_bench.py [--backlog-mb 1024] [--file-mb 4] [--chunk-kb 256] [--tls]
[--runs 3] [--json]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from agent.core.clock import SystemClock  # noqa: E402
from agent.core.model import NO_GPS, Moment, TimeQuality  # noqa: E402
from agent.device.sealer import Sealer  # noqa: E402
from agent.evidence.vault import Vault  # noqa: E402
from agent.signing.keys import init_identity, load_identity  # noqa: E402
from agent.uplink.service import Uplink  # noqa: E402
from agent.uplink.settings import UplinkConfig  # noqa: E402
from agent.wire.chunks import chunk_size_for  # noqa: E402
from tests.support.broker import Mosquitto  # noqa: E402

DEVICE, SITE = "bench-dev", "bench-site"


def make_backlog(root: Path, total: int, file_size: int) -> tuple[Vault, list[Path]]:
    init_identity(root / "keys", DEVICE, "Bench")
    vault = Vault(root / "vault")
    sealer = Sealer(vault, load_identity(root / "keys"), device_id=DEVICE, site_id=SITE)
    clock = SystemClock()

    def now() -> Moment:
        return Moment(clock.wall_ns(), clock.mono_ns(), NO_GPS, TimeQuality("ntp", True))

    sealer.start(now())
    files = []
    block = os.urandom(file_size)
    for i in range(max(1, total // file_size)):
        staged = vault.staging_path("mp4")
        staged.write_bytes(i.to_bytes(8, "big") + block[8:])
        item = sealer.seal("segment", now(), media=staged, media_type="video/mp4", ext="mp4")
        assert item.media_path is not None
        files.append(Path(item.media_path))
    return vault, files


def bench_mosquitto_pub(broker: Mosquitto, files: list[Path]) -> float:
    topic = f"evidence/{SITE}/{DEVICE}/media"
    t0 = time.perf_counter()
    for f in files:
        subprocess.run(["mosquitto_pub", *broker.client_args(DEVICE), "-q", "1", "-t", topic, "-f", str(f)],
                       check=True, capture_output=True)
    return time.perf_counter() - t0


def bench_bare_paho(broker: Mosquitto, files: list[Path], chunk: int, window: int) -> float:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv5)
    if broker.tls:
        assert broker.pki is not None
        cert = broker.pki.client(DEVICE)
        c.tls_set(str(cert.ca), str(cert.cert), str(cert.key))
    c.max_inflight_messages_set(window)
    slots = threading.Semaphore(window)
    failures: list[int] = []

    def on_publish(_c: object, _u: object, _mid: int, rc: object, _p: object) -> None:
        if getattr(rc, "value", 0) >= 0x80:
            failures.append(int(getattr(rc, "value", 0)))
        slots.release()

    c.on_publish = on_publish
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    topic = f"evidence/{SITE}/{DEVICE}/media"
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb") as fh:
            while data := fh.read(chunk):
                slots.acquire()
                c.publish(topic, data, qos=1)
    for _ in range(window):
        slots.acquire()
    elapsed = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    if failures:
        raise RuntimeError(f"bare paho: broker refused {len(failures)} chunks")
    return elapsed


def bench_outbox(broker: Mosquitto, root: Path, vault: Vault, chunk: int, window: int,
                 expected: int, run: int = 0) -> dict[str, float]:
    mqtt = broker.mqtt_config(DEVICE, client_id="bench-outbox", max_inflight=window)
    cfg = UplinkConfig(enabled=True, mqtt=mqtt, outbox_path=root / f"outbox-{run}.sqlite", chunk_bytes=chunk,
                       window_bytes=window * chunk, require_subscriber=False, status_interval_s=3600)
    t0 = time.perf_counter()
    uplink = Uplink(cfg, site_id=SITE, device_id=DEVICE, vault_dir=vault.path)
    uplink.outbox.start()  # catch-up from the vault first: the backlog as after an outage
    while uplink.outbox.stats().pending < expected:
        time.sleep(0.01)
    t_queue = time.perf_counter() - t0
    t1 = time.perf_counter()
    uplink.link.start()
    uplink.status.start()
    if not uplink.drain(3600):
        raise RuntimeError(f"outbox did not drain: {uplink.outbox.stats()}")
    t_drain = time.perf_counter() - t1
    uplink.close()
    return {"enqueue_s": t_queue, "drain_s": t_drain}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backlog-mb", type=float, default=128.0)
    p.add_argument("--file-mb", type=float, default=4.0)
    p.add_argument("--chunk-kb", type=int, default=256)
    p.add_argument("--window", type=int, default=32, help="messages in flight (all three use it where they can)")
    p.add_argument("--tls", action="store_true", help="mutual TLS broker instead of plain TCP")
    p.add_argument("--runs", type=int, default=3, help="bare paho / outbox pairs, interleaved; medians")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    total, file_size = int(a.backlog_mb * 2**20), int(a.file_mb * 2**20)
    with tempfile.TemporaryDirectory(prefix="uplink-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        vault, files = make_backlog(root / "dev", total, file_size)
        seal_s = time.perf_counter() - t0
        nbytes = sum(f.stat().st_size for f in files)
        with Mosquitto(root / "broker", tls=a.tls) as broker:
            chunk = chunk_size_for(broker_max(), f"evidence/{SITE}/{DEVICE}/media", a.chunk_kb * 1024)
            pub_s = bench_mosquitto_pub(broker, files)
            expected = 2 * len(files) + 1  # record + media per segment, + the restart record
            bares, outs = [], []
            for run in range(a.runs):
                bares.append(bench_bare_paho(broker, files, chunk, a.window))
                outs.append(bench_outbox(broker, root / "dev", vault, chunk, a.window, expected, run))
        vault.close()
    bare_s = statistics.median(bares)
    out = {k: statistics.median(o[k] for o in outs) for k in ("enqueue_s", "drain_s")}
    mb = nbytes / 2**20
    result = {
        "bytes": nbytes, "files": len(files), "file_mb": a.file_mb, "chunk_bytes": chunk, "window": a.window,
        "tls": a.tls, "seal_s": round(seal_s, 3), "runs": a.runs,
        "bare_paho_MB_s_each": [round(mb / s, 1) for s in bares],
        "outbox_MB_s_each": [round(mb / o["drain_s"], 1) for o in outs],
        "mosquitto_pub": {"s": round(pub_s, 3), "MB_s": round(mb / pub_s, 1)},
        "bare_paho": {"s": round(bare_s, 3), "MB_s": round(mb / bare_s, 1)},
        "outbox": {"enqueue_s": round(out["enqueue_s"], 3), "drain_s": round(out["drain_s"], 3),
                   "MB_s": round(mb / out["drain_s"], 1)},
        "outbox_vs_mosquitto_pub": round(pub_s / out["drain_s"], 2),
        "outbox_vs_bare_paho": round(bare_s / out["drain_s"], 2),
        "check": hashlib.sha256(str(nbytes).encode()).hexdigest()[:8],
    }
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(files)} files x {a.file_mb} MB = {mb:.0f} MB, chunks {chunk} B, window {a.window}, "
              f"{'TLS' if a.tls else 'plain TCP'} loopback mosquitto, QoS 1, no subscriber")
        print(f"  mosquitto_pub (1 process/file): {pub_s:7.2f} s  {mb / pub_s:8.1f} MB/s")
        print(f"  bare paho loop (same chunks):   {bare_s:7.2f} s  {mb / bare_s:8.1f} MB/s")
        print(f"  outbox drain of the backlog:    {out['drain_s']:7.2f} s  {mb / out['drain_s']:8.1f} MB/s "
              f"(enqueue/catch-up {out['enqueue_s']:.2f} s)")
        print(f"  outbox / mosquitto_pub = {result['outbox_vs_mosquitto_pub']}x, "
              f"outbox / bare paho = {result['outbox_vs_bare_paho']}x")
    return 0


def broker_max() -> int:
    from agent.wire.mqtt_settings import MQTT_MAX_PACKET

    return MQTT_MAX_PACKET


if __name__ == "__main__":
    sys.exit(main())

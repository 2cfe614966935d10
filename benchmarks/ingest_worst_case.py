"""Ingest worst-case message cost: how long one hostile (or merely large) message holds the ingest.

Run:  PYTHONPATH=. /work/main/.venv/bin/python benchmarks/ingest_worst_case.py [--json]

Each case is handled by a fresh ``Ingest`` in this process; the figure is the median of 5 runs of
``Ingest.handle``. The reference is the cost of one ordinary still (record + 1 chunk), so the ratios say
how much more a worst-case message costs than a normal one. x86 figures, not Pi figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.customs.ingest import Ingest  # noqa: E402
from agent.wire.mqtt import Inbound  # noqa: E402
from tests.support.hostile import Device, chunk_msgs, raw_chunk, record_msg, sidecar  # noqa: E402

MIB = 1 << 20


def _time(setup: Callable[[Ingest], list[Inbound]], runs: int = 5) -> float:
    """Median ms of handling the last message of ``setup``'s list (the others prepare the state)."""
    out = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            ingest = Ingest(Path(tmp) / "out")
            msgs = setup(ingest)
            for m in msgs[:-1]:
                ingest.handle(m)
            started = time.perf_counter()
            ingest.handle(msgs[-1])
            out.append((time.perf_counter() - started) * 1000)
            ingest.close()
    return statistics.median(out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dev = Device(Path(tmp), "bench-dev")
        still = dev.still(b"j" * 200_000)
        big = b"v" * (64 * MIB)
        segment = dev.still(big)  # a 64 MiB file, cut into 1 MiB chunks: the last chunk hashes all of it
        chunks = chunk_msgs(dev, segment, big, chunk=MIB)
        template = dev.event()
        cases: dict[str, Callable[[Ingest], list[Inbound]]] = {
            "ordinary still (record, then its one chunk)": lambda _i: [
                record_msg(dev, sidecar(still)), *chunk_msgs(dev, still, b"j" * 200_000, chunk=MIB)],
            "1 MiB record nested 1M deep (refused)": lambda _i: [record_msg(dev, b"[" * MIB)],
            "1 MiB record of 1M-char escapes (refused)": lambda _i: [record_msg(dev, b'"' + b"\\\\" * (MIB // 2))],
            "validly signed record at seq 2^40 (stored; report stays streamed)": lambda _i: [
                record_msg(dev, dev.forge(template, seq=2**40))],
            "chunk declaring 2 GB (refused)": lambda _i: [raw_chunk(dev, size=2 * 10**9)],
            "last chunk of a 64 MiB file (reassembly + SHA-256 + verify)": lambda _i: [
                record_msg(dev, sidecar(segment)), *chunks],
        }
        results = {name: round(_time(setup, runs=3 if "64 MiB" in name else 5), 2) for name, setup in cases.items()}
        dev.close()
    base = results["ordinary still (record, then its one chunk)"]
    if args.json:
        print(json.dumps({"ms": results, "ratio_to_ordinary": {k: round(v / base, 1) for k, v in results.items()}},
                         indent=1))
    else:
        for name, ms in results.items():
            print(f"{ms:9.2f} ms  {ms / base:7.1f}x  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

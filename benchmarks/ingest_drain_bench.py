"""Ingest draining a backlog: a bare paho subscriber and 1 and 2 ingest workers, same run, same broker.

The peer a user would pick is a bare paho subscriber (QoS 1, auto-ack, counting only): the ceiling of
the stack on this machine. A backlog of ``--records`` genuinely signed records from ``--devices`` devices
(a third with media) is queued in Mosquitto while the consumer is away, then drained; the figure is
records/s from the first to the last record stored (fleet_bench.py's ``run_drain``), and records per CPU
second of the consumer processes (from their CONNECT to the last record: start-up imports left out; the
broker's and PostgreSQL's CPU are not in it). Wall rates on a loaded machine mostly measure the wait for
a core; the CPU rate is what load spoils least, and its ratio to the bare subscriber's is the figure to
judge a change by. Each configuration
runs ``--runs`` times, interleaved (bare, 1, 2 workers, then again), and the medians are compared.
``--pg`` keeps the group state (and the index) in a PostgreSQL server the bench starts as an
unprivileged user (tests/support/postgres.py); otherwise the state is ``OUT/.ingest/state.sqlite``.
``--old TREE`` also runs the workers from another source tree (e.g. a checkout of main) in the same run,
interleaved with this tree's, so old and new code face the same machine load.

Usage: ``python benchmarks/ingest_drain_bench.py [--records 5000] [--runs 3] [--pg] [--old /work/main]
[--json]`` (x86 VM figures, not Pi figures; the machine's other load shows in the spread).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import benchmarks.fleet_bench as fb  # noqa: E402
from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.postgres import Postgres  # noqa: E402
from tests.support.sim_fleet import Fleet  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--media-kb", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--pg", action="store_true", help="group state and index in PostgreSQL")
    ap.add_argument("--old", type=Path, help="another source tree whose workers run in the same run")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    trees = {"new": REPO, **({"old": a.old.resolve()} if a.old else {})}
    pg = Postgres().start() if a.pg else None
    rates: dict[str, list[float]] = {}
    per_cpu: dict[str, list[float]] = {}  # records per consumer CPU second: steadier than wall on a busy VM
    try:
        with tempfile.TemporaryDirectory(prefix="ingest-drain-") as d:
            tmp = Path(d)
            fleet = Fleet(a.devices, tmp / "fleet-ca.pem")
            backlog = fleet.restart_messages() + list(
                fleet.burst(a.records - a.devices, 3, a.media_kb * 1024, shuffle=fb.MIX))
            # the backlog is queued and drained within a run: no periodic save of it competing for the disk
            with Mosquitto(tmp / "broker", tls=False, autosave_interval=3600) as broker:
                for run in range(a.runs):
                    configs = [("bare-paho", 0, REPO)] + [
                        (f"{tag}-{w}-worker", int(w), tree)
                        for w in a.workers.split(",") for tag, tree in trees.items()]
                    for name, workers, tree in configs:
                        fb.WORKER_TREE = tree
                        r = fb.run_drain(f"{name}-r{run}", workers, broker, fleet.ca_file, backlog, tmp, pg)
                        rates.setdefault(name, []).append(float(r["records_per_s"]))  # type: ignore[arg-type]
                        per_cpu.setdefault(name, []).append(float(r["records_per_cpu_s"]))  # type: ignore[arg-type]
                        print(json.dumps({"run": run, "consumer": name, "records_per_s": r["records_per_s"],
                                          "records_per_cpu_s": r["records_per_cpu_s"], "cpu_share": r["cpu_share"],
                                          "loss_check": r["loss_check"]}), file=sys.stderr, flush=True)
    finally:
        if pg is not None:
            pg.stop()
    med = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    med_cpu = {k: round(statistics.median(v), 1) for k, v in per_cpu.items()}
    bare, bare_cpu = med["bare-paho"], med_cpu["bare-paho"]
    ratios = {f"{k}_vs_bare_paho": round(v / bare, 2) for k, v in med.items() if k != "bare-paho"}
    cpu_ratios = {f"{k}_vs_bare_paho": round(v / bare_cpu, 3) for k, v in med_cpu.items() if k != "bare-paho"}
    for tag in trees:
        one = med.get(f"{tag}-1-worker")
        for k, v in med.items():
            if one and k.startswith(f"{tag}-") and k != f"{tag}-1-worker":
                ratios[f"{k}_vs_{tag}-1-worker"] = round(v / one, 2)
    result = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
              "group_state": "postgresql" if pg else "sqlite", "records": a.records, "devices": a.devices,
              "runs": a.runs, "records_per_s": rates, "median_records_per_s": med, "ratios": ratios,
              "records_per_cpu_s": per_cpu, "median_records_per_cpu_s": med_cpu, "cpu_ratios": cpu_ratios,
              "loadavg_at_end": os.getloadavg()}
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        load = result["loadavg_at_end"]
        print(f"ingest drain of {a.records} records ({a.devices} devices), {result['group_state']} state, "
              f"medians of {a.runs}, {os.cpu_count()} cores, load average at the end {load[0]:.1f} {load[1]:.1f}")
        for k, v in med.items():
            print(f"  {k:<18} {v:9.1f} rec/s  {v / bare:5.2f}x bare paho   {med_cpu[k]:9.1f} rec/CPU-s  "
                  f"{med_cpu[k] / bare_cpu:5.3f}x bare paho")
        for k, v in ratios.items():
            if "_vs_" in k and "bare" not in k:
                print(f"  {k}: {v}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

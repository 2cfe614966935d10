"""Customs ingest at fleet scale: a simulated fleet through Mosquitto into 1, 2 and 3 ingest workers.

Same run, same messages for every consumer:

* **bare paho**: a subscriber process that only counts (QoS 1, auto-ack) — the ceiling of the stack;
* **N workers**: ``evidence-officer ingest --share`` processes (flow control, batch store, shared OUT).

The fleet: ``--devices`` identities, each with its own P-256 key and a leaf from one fleet CA; every
record is sealed by the device Sealer (genuinely signed, chained), a third carry ``--media-kb`` media.
Each consumer gets a *sustained* phase (``--rate`` records/s for ``--seconds``: p95 publish→indexed)
and a *burst* (``--burst`` records at once, as after an outage: records/s until all are indexed).
``--kill`` SIGKILLs one of two workers mid-burst and restarts it: nothing may be lost.
Zero loss is checked per phase (every record indexed, no missing seq, nothing refused).

Usage: ``python benchmarks/fleet_bench.py [--devices 1000] [--rate 350] [--seconds 20] [--burst 10000]
[--workers 1,2,3] [--kill] [--only-burst 100000] [--store-only 3000]``  (x86 figures; say what the machine is).
``--store-only`` measures the store path in process (CPU ms per record, one commit per message vs batches).
``--index pg`` gives every worker ``--index postgresql://…`` (a PostgreSQL server started by the bench,
one database per configuration): the group's bookkeeping is then in PostgreSQL with per-device locks
instead of ``OUT/.ingest/state.sqlite`` under one group lock; the server's CPU is reported beside.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
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

from tests.support.broker import Mosquitto  # noqa: E402
from tests.support.postgres import Postgres  # noqa: E402
from tests.support.sim_fleet import Fleet, Message, Publisher  # noqa: E402

MIX = random.Random(16)  # devices publish in a random order (see Fleet.burst), the same in every run
WORKER_TREE = REPO  # the source tree the ingest workers run from (ingest_drain_bench.py compares two)
AUTOSAVE_S = 60  # as the shipped mosquitto.conf: the test default (1 s) rewrites a backlog of 300 MB every second


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a live process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def config_dsn(pg: Postgres | None, name: str) -> str | None:
    """A database of its own for one consumer configuration (None: no --index)."""
    if pg is None:
        return None
    import psycopg

    db = "bench_" + name.replace("-", "_")
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    return pg.dsn.rsplit("/", 1)[0] + "/" + db


def server_cpu_s(pg: Postgres | None) -> dict[int, float]:
    """CPU seconds of the PostgreSQL server's processes (the postmaster and its children), by pid."""
    if pg is None:
        return {}
    main = int((pg.data / "postmaster.pid").read_text().split()[0])
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            if pid == main or int(fields[1]) == main:
                out[pid] = cpu_s(pid)
        except (OSError, ValueError, IndexError):
            continue
    return out


def server_share(before: dict[int, float], after: dict[int, float], wall: float) -> float:
    return round(sum(v - before.get(pid, 0.0) for pid, v in after.items()) / max(wall, 1e-9), 2)


# -- the bare paho subscriber (a child process, like a worker) ----------------------------------------
def bare_sub(port: int, expect: int, out: Path) -> None:
    """Count records (QoS 1, acknowledged by paho at once); dump item -> receive time every half second."""
    recv: dict[str, int] = {}
    lock = threading.Lock()

    def on_message(_c: object, _u: object, msg: paho.MQTTMessage) -> None:
        if msg.topic.endswith("/record"):
            item = dict(getattr(msg.properties, "UserProperty", None) or []).get("item", "")
            with lock:
                recv.setdefault(item, time.time_ns())

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-sub-{out.parent.name}", protocol=paho.MQTTv5)
    c.on_message = on_message
    group = f"bare-{out.parent.name}"  # a group of its own per run: an earlier run's session takes no share
    c.on_connect = lambda cl, *_a: cl.subscribe([(f"$share/{group}/evidence/+/+/record", 1),
                                                 (f"$share/{group}/evidence/+/+/media", 1)])
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600  # a persistent session, like the ingest's: a drain queues for it
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    while True:
        with lock:
            snapshot = json.dumps(recv)
            n = len(recv)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(snapshot)
        os.replace(tmp, out)
        if n >= expect:
            break
        time.sleep(0.5)
    c.loop_stop()


# -- one consumer configuration --------------------------------------------------------------------
class Consumers:
    def __init__(self, broker: Mosquitto, root: Path, workers: int, ca: Path, expect: int,
                 dsn: str | None = None) -> None:
        self.broker, self.root, self.ca, self.expect, self.dsn = broker, root, ca, expect, dsn
        self.out = root / "out"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.group = f"g{os.getpid()}{int(time.time() * 1000) % 100000}"
        self.bare = workers == 0
        self._seen: dict[str, int] = {}
        self.spies: list[subprocess.Popen[bytes]] = []
        if self.bare:
            self.recv_file = root / "bare.json"
            self.start_bare()
        else:
            for i in range(workers):
                self.start_worker(i)
        self.cpu0 = [cpu_s(p.pid) for p in self.procs]

    def start_bare(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        p = subprocess.Popen([sys.executable, __file__, "--bare-sub", str(self.broker.port), str(self.expect),
                              str(self.recv_file)], cwd=REPO, env=env)
        self.procs[:1] = [p]
        self._wait_log(f"as bare-sub-{self.root.name}")

    def pause(self) -> None:
        """Stop every consumer; their persistent sessions keep their share of what arrives meanwhile."""
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(120)

    def resume(self) -> None:
        if self.bare:
            self.start_bare()
        else:
            for i in range(len(self.procs)):
                self.start_worker(i)
        self.cpu0 = [cpu_s(p.pid) for p in self.procs]
        spy = os.environ.get("BENCH_PYSPY")  # a folder: profile each consumer's drain (py-spy, every thread)
        if spy:
            for i, p in enumerate(self.procs):
                self.spies.append(subprocess.Popen(
                    ["py-spy", "record", "-p", str(p.pid), "-r", "250", "--threads", "--native",
                     "-f", "raw", "-o", str(Path(spy) / f"{self.root.name}-{i}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def start_worker(self, i: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(WORKER_TREE)}
        cid = f"{self.group}-w{i}"
        with open(self.root / f"w{i}.log", "ab") as log:
            p = subprocess.Popen([sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", self.broker.url,
                                  "--out", str(self.out), "--share", self.group, "--client-id", cid,
                                  "--trust-ca", str(self.ca), "--report", str(self.root / f"report-{i}.json"),
                                  *(["--index", self.dsn] if self.dsn else [])],
                                 cwd=WORKER_TREE, env=env, stdout=subprocess.DEVNULL, stderr=log)
        if i < len(self.procs):
            self.procs[i] = p
        else:
            self.procs.append(p)
        self._wait_log(f"as {cid}")

    def _wait_log(self, text: str) -> None:
        deadline = time.monotonic() + 120  # a broker saving a large backlog to disk answers CONNECT late
        seen = self._seen.get(text, 0)
        while self.broker.log_text().count(text) <= seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{text!r} never connected")
            time.sleep(0.1)
        self._seen[text] = seen + 1
        time.sleep(0.3)

    def indexed(self) -> dict[str, int]:
        """record hash -> indexed time (ns) so far."""
        if self.bare:
            return json.loads(self.recv_file.read_text()) if self.recv_file.exists() else {}
        if self.dsn:
            return dict(self._pg("SELECT item, at_ns FROM ingest.records"))
        db_path = self.out / ".ingest" / "state.sqlite"
        if not db_path.exists():
            return {}
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            return {r[0]: r[1] for r in db.execute("SELECT item, at_ns FROM records")}
        except sqlite3.Error:
            return {}
        finally:
            db.close()

    def count(self) -> int:
        if self.bare:
            return len(self.indexed())
        if self.dsn:
            rows = self._pg("SELECT COUNT(*) FROM ingest.records WHERE media_done=1")
            return int(rows[0][0]) if rows else 0
        db_path = self.out / ".ingest" / "state.sqlite"
        if not db_path.exists():
            return 0
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            return int(db.execute("SELECT COUNT(*) FROM records WHERE media_done=1").fetchone()[0])
        except sqlite3.Error:
            return 0
        finally:
            db.close()

    def _pg(self, sql: str) -> list[tuple[object, ...]]:
        import psycopg

        try:
            with psycopg.connect(str(self.dsn), autocommit=True) as conn:
                return conn.execute(sql).fetchall()
        except psycopg.errors.UndefinedTable:  # no worker has created the state tables yet
            return []

    def cpu(self) -> float:
        return sum(cpu_s(p.pid) - c0 for p, c0 in zip(self.procs, self.cpu0, strict=True) if p.poll() is None)

    def peak_rss_mb(self) -> list[float]:
        return [peak_rss_mb(p.pid) for p in self.procs if p.poll() is None]

    def close(self) -> dict[str, object]:
        reports: dict[str, object] = {}
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(120)
        for spy in self.spies:  # it writes its profile once the process it watches has ended
            spy.wait(120)
        if not self.bare:
            rep = json.loads((self.root / "report-0.json").read_text())
            devs = rep["devices"].values()
            reports = {"records": sum(d["records"] for d in devs),
                       "missing": sum(len(d["missing"]) for d in devs),
                       "incomplete": sum(len(d["incomplete"]) for d in devs),
                       "refused": sum(d["refused"] for d in devs)}
            flows = [json.loads(f.read_text()).get("flow", {}) for f in sorted(self.root.glob("report-*.json"))]
            reports["flow"] = {k: sum(int(f.get(k, 0)) for f in flows) for k in ("batches", "deferred", "retries")}
        return reports


def wait_all(cons: Consumers, expect: int, timeout: float, on_half: object = None) -> float:
    """Seconds until ``expect`` records are indexed; runs ``on_half`` once at half."""
    started = time.monotonic()
    fired = False
    while cons.count() < expect:
        if not fired and on_half is not None and cons.count() >= expect // 2:
            fired = True
            on_half()  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"only {cons.count()}/{expect} records indexed after {timeout:.0f} s (loss or stall)")
        time.sleep(0.2)
    return time.monotonic() - started


def run_config(name: str, workers: int, broker: Mosquitto, fleet_ca: Path, phases: list[list[Message]],
               rate: float, tmp: Path, kill: bool, pg: Postgres | None = None) -> dict[str, object]:
    total = sum(sum(1 for m in ph if m.is_record) for ph in phases)
    root = tmp / name
    root.mkdir()
    cons = Consumers(broker, root, workers, fleet_ca, total, None if workers == 0 else config_dsn(pg, name))
    pcpu0 = server_cpu_s(pg)
    pub = Publisher("127.0.0.1", broker.port, f"pub-{name}", inflight=500)
    out: dict[str, object] = {"consumer": name}
    bcpu0, t0 = cpu_s(broker.proc.pid), time.process_time()  # type: ignore[union-attr]
    wall0 = time.monotonic()
    done = 0
    try:
        for label, msgs, r in (("sustained", phases[0], rate), ("burst", phases[1], None)):
            n = sum(1 for m in msgs if m.is_record)
            if n == 0:
                continue
            started = time.monotonic()
            first_ns = time.time_ns()
            sender = threading.Thread(target=pub.send, args=(msgs, r))
            sender.start()

            def kill_one() -> None:
                victim = cons.procs[-1]
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                out["killed_at_records"] = cons.count()
                cons.start_worker(len(cons.procs) - 1)

            took = wait_all(cons, done + n, 1800, kill_one if (kill and label == "burst") else None)
            sender.join()
            # Every message handed to paho must have been acknowledged by the broker (else loss is ours).
            if not pub.wait_acked(pub.sent, 60) or pub.failed:
                raise RuntimeError(f"broker acknowledged {pub.acked}/{pub.sent} messages, {pub.failed} refused")
            done += n
            indexed = cons.indexed()
            lat = sorted((indexed[m.item] - pub.sent_at[m.item]) / 1e6 for m in msgs
                         if m.is_record and m.item in indexed)
            out[label] = {"records": n, "seconds": round(took, 2),
                          "records_per_s": round(n / max(time.monotonic() - started, 1e-9), 1),
                          "p50_ms": round(statistics.median(lat), 1) if lat else None,
                          "p95_ms": round(lat[int(len(lat) * 0.95) - 1], 1) if lat else None,
                          "first_to_last_s": round((max(indexed[m.item] for m in msgs if m.is_record)
                                                    - first_ns) / 1e9, 2) if lat else None}
        wall = time.monotonic() - wall0
        out["published"] = {"messages": pub.sent, "acked_by_broker": pub.acked}
        out["peak_rss_mb"] = {"consumers": cons.peak_rss_mb(),
                              "broker": peak_rss_mb(broker.proc.pid)}  # type: ignore[union-attr]
        out["cpu_share"] = {"consumers": round(cons.cpu() / wall, 2),
                            "broker": round((cpu_s(broker.proc.pid) - bcpu0) / wall, 2),  # type: ignore[union-attr]
                            "publisher_and_bench": round((time.process_time() - t0) / wall, 2),
                            **({"postgres": server_share(pcpu0, server_cpu_s(pg), wall)} if pg else {})}
    finally:
        pub.close()
        out["loss_check"] = cons.close()
    return out


def run_drain(name: str, workers: int, broker: Mosquitto, fleet_ca: Path, msgs: list[Message],
              tmp: Path, pg: Postgres | None = None) -> dict[str, object]:
    """A backlog queued while the consumers were away (an outage), then drained: the publisher is idle
    while the consumers work, so the figure is theirs and the broker's alone."""
    n = sum(1 for m in msgs if m.is_record)
    root = tmp / name
    root.mkdir()
    cons = Consumers(broker, root, workers, fleet_ca, n, None if workers == 0 else config_dsn(pg, name))
    cons.pause()
    pub = Publisher("127.0.0.1", broker.port, f"pub-{name}", inflight=500)
    out: dict[str, object] = {"consumer": name, "records": n, "messages": len(msgs)}
    try:
        pub.send(msgs)
        if not pub.wait_acked(pub.sent, 600) or pub.failed:
            raise RuntimeError(f"broker acknowledged {pub.acked}/{pub.sent} messages, {pub.failed} refused")
        pub.close()
        bcpu0, pcpu0 = cpu_s(broker.proc.pid), server_cpu_s(pg)  # type: ignore[union-attr]
        cons.resume()
        took = wait_all(cons, n, 1800)
        stamps = sorted(cons.indexed().values())
        span = (stamps[-1] - stamps[0]) / 1e9  # first to last stored: worker start-up (imports) left out
        out["seconds_with_startup"] = round(took, 2)
        out["seconds"] = round(span, 2)
        out["records_per_s"] = round(n / max(span, 1e-9), 1)
        consumers_cpu = cons.cpu()  # from each consumer's CONNECT (start-up imports left out) to the last record
        out["consumers_cpu_s"] = round(consumers_cpu, 3)
        out["records_per_cpu_s"] = round(n / max(consumers_cpu, 1e-9), 1)  # what a loaded machine spoils least
        out["cpu_share"] = {"consumers": round(consumers_cpu / took, 2),
                            "broker": round((cpu_s(broker.proc.pid) - bcpu0) / took, 2),  # type: ignore[union-attr]
                            **({"postgres": server_share(pcpu0, server_cpu_s(pg), took)} if pg else {})}
        out["peak_rss_mb"] = {"consumers": cons.peak_rss_mb(),
                              "broker": peak_rss_mb(broker.proc.pid)}  # type: ignore[union-attr]
    finally:
        out["loss_check"] = cons.close()
    return out


def store_only(records: int, devices: int, media_kb: int, tmp: Path, pg: Postgres | None = None) -> dict[str, object]:
    """The ingest's store path alone (no broker): CPU and wall per record, one message per commit vs batches.

    CPU time is the robust figure on a shared machine (wall time includes waiting for a core). With ``pg``
    the records are also indexed and the group state is kept in PostgreSQL (the server's CPU is beside).
    """
    from agent.customs.cli import group_state
    from agent.customs.ingest import Ingest
    from agent.customs.store.opening import open_index
    from agent.wire.messages import Inbound

    fleet = Fleet(devices, tmp / "store-ca.pem")
    msgs = fleet.restart_messages() + list(fleet.burst(records - devices, 3, media_kb * 1024, shuffle=MIX))
    inbound = [Inbound(topic=m.topic, payload=m.payload, qos=1, retain=False, user_props=m.props) for m in msgs]
    out: dict[str, object] = {}
    for batch in (1, 256):
        index = None if pg is None else open_index(str(config_dsn(pg, f"store-{batch}")))
        ingest = Ingest(tmp / f"store-{batch}", trusted_ca=[fleet.ca_file], index=index, state=group_state(index))
        wall, cpu, server = time.perf_counter(), time.process_time(), server_cpu_s(pg)
        for i in range(0, len(inbound), batch):
            ingest.handle_batch(inbound[i:i + batch])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ok = all(r.refused == 0 and not r.missing and not r.incomplete for r in ingest.report().values())
        server_ms = server_share(server, server_cpu_s(pg), 1.0) * 1000 / records
        ingest.close()
        if index is not None:
            index.close()
        out[f"batch_{batch}"] = {"records": records, "cpu_ms_per_record": round(cpu * 1000 / records, 2),
                                 **({"postgres_cpu_ms_per_record": round(server_ms, 2)} if pg else {}),
                                 "wall_ms_per_record": round(wall * 1000 / records, 2),
                                 "records_per_cpu_s": round(records / cpu, 1), "all_stored": ok}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bare-sub", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=350.0, help="sustained records/s (1 000 devices x 0.35)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--burst", type=int, default=10_000)
    ap.add_argument("--media-kb", type=int, default=16)
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--no-bare", action="store_true")
    ap.add_argument("--kill", action="store_true", help="SIGKILL one of 2 workers mid-burst and restart it")
    ap.add_argument("--only-burst", type=int, help="one worker, one burst of this many records (no sustained phase)")
    ap.add_argument("--drain", type=int, help="a backlog of this many records queued while every consumer is "
                    "away, then drained by bare paho and by 1, 2, 3 workers (publisher idle meanwhile)")
    ap.add_argument("--index", choices=("pg",), help="workers index into (and keep their group state in) a "
                    "PostgreSQL server the bench starts")
    ap.add_argument("--store-only", type=int, help="only the store path, in process, for this many records")
    args = ap.parse_args()
    if args.store_only:
        with tempfile.TemporaryDirectory(prefix="fleet-store-") as d:
            pg = Postgres().start() if args.index == "pg" else None
            try:
                print(json.dumps(store_only(args.store_only, min(args.devices, 200), args.media_kb, Path(d), pg),
                                 indent=1))
            finally:
                if pg is not None:
                    pg.stop()
        return
    if args.bare_sub:
        bare_sub(int(args.bare_sub[0]), int(args.bare_sub[1]), Path(args.bare_sub[2]))
        return
    pg = Postgres().start() if args.index == "pg" else None
    try:
        run(args, pg)
    finally:
        if pg is not None:
            pg.stop()


def run(args: argparse.Namespace, pg: Postgres | None) -> None:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as d:
        tmp = Path(d)
        t = time.monotonic()
        fleet = Fleet(args.devices, tmp / "fleet-ca.pem")
        restarts = fleet.restart_messages()
        media = args.media_kb * 1024
        if args.drain:
            backlog = restarts + list(fleet.burst(args.drain - len(restarts), 3, media, shuffle=MIX))
            drained = []
            with Mosquitto(tmp / "broker", tls=False, autosave_interval=AUTOSAVE_S) as broker:
                for name, workers in ([] if args.no_bare else [("bare-paho", 0)]) + \
                        [(f"{w}-worker", int(w)) for w in args.workers.split(",")]:
                    drained.append(run_drain(name, workers, broker, fleet.ca_file, backlog, tmp, pg))
                    print(json.dumps(drained[-1]), file=sys.stderr)
            rate = {str(r["consumer"]): float(r["records_per_s"]) for r in drained}  # type: ignore[arg-type]
            ratios = {f"{k}_vs_bare_paho": round(v / rate["bare-paho"], 2) for k, v in rate.items()
                      if "bare-paho" in rate and k != "bare-paho"}
            ratios.update({f"{k}_vs_1_worker": round(v / rate["1-worker"], 2) for k, v in rate.items()
                           if "1-worker" in rate and k not in ("bare-paho", "1-worker")})
            print(json.dumps({"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
                              "group_state": "postgresql" if pg else "sqlite", "drain": drained,
                              "ratios": ratios}, indent=1))
            return
        if args.only_burst:
            phases = [[], restarts + list(fleet.burst(args.only_burst - len(restarts), 3, media, shuffle=MIX))]
        else:
            sustained = restarts + list(fleet.burst(int(args.rate * args.seconds) - len(restarts), 3, media,
                                                    shuffle=MIX))
            phases = [sustained, list(fleet.burst(args.burst, 3, media, shuffle=MIX))]
        print(f"# fleet of {args.devices} devices, {sum(len(p) for p in phases)} messages sealed in "
              f"{time.monotonic() - t:.1f} s; {os.cpu_count()} cores", file=sys.stderr)
        configs = [] if args.no_bare or args.only_burst else [("bare-paho", 0)]
        configs += [(f"{w}-worker", int(w)) for w in ([1] if args.only_burst else args.workers.split(","))]
        results = []
        with Mosquitto(tmp / "broker", tls=False, autosave_interval=AUTOSAVE_S) as broker:
            for name, workers in configs:
                results.append(run_config(name, workers, broker, fleet.ca_file, phases, args.rate, tmp, False, pg))
                print(json.dumps(results[-1]), file=sys.stderr)
            if args.kill and not args.only_burst:
                results.append(run_config("2-worker-kill9", 2, broker, fleet.ca_file, phases, args.rate, tmp, True,
                                          pg))
                print(json.dumps(results[-1]), file=sys.stderr)
        by = {r["consumer"]: r for r in results}

        def burst_rate(name: str) -> float:
            return float(by[name]["burst"]["records_per_s"]) if name in by else 0.0  # type: ignore[index]

        ratios = {}
        if "bare-paho" in by and "1-worker" in by:
            ratios["1_worker_vs_bare_paho"] = round(burst_rate("1-worker") / burst_rate("bare-paho"), 2)
        for w in (2, 3):
            if f"{w}-worker" in by and "1-worker" in by:
                ratios[f"{w}_workers_vs_1"] = round(burst_rate(f"{w}-worker") / burst_rate("1-worker"), 2)
        print(json.dumps({"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
                          "results": results, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()

"""The console's search over a customs index of ~100 000 records, SQLite and PostgreSQL, against a plain SELECT.

Same run, same index, same filters, same rows for every contender:

* **plain SELECT** (the peer): the driver runs the equivalent hand-written query with parameters and fetches
  the rows — what someone would write without our layer;
* **store**: ``Index.search`` (the shared SQL in ``agent/customs/store/sql.py``) returning ``ItemRow``s;
* **API**: what ``GET /api/search`` does — ``parse_query`` of the officer's parameters, the read-only
  ``IndexReader``, ``Index.search`` + the capped ``Index.count`` of a first page, rows to JSON — through
  FastAPI's ``TestClient`` (HTTP framing included, no socket); "HTTP floor" is a 404 through the same client.

The index is filled through the store API the ingest uses (``put_item`` in transactions of 1000): synthetic
``ItemRow``s for ``--devices`` devices over 30 days, every 4th a still, events typed, a few with a case number.
Reported per filter: p50/p95 in ms of ``--repeat`` runs and the ratio to the plain SELECT's p50.

Usage: ``python benchmarks/search_bench.py [--rows 100000] [--devices 100] [--repeat 40] [--backend sqlite,postgres]``
(x86 figures, this machine: say how loaded it was; PostgreSQL is started in a temporary folder when installed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.customs.console.search import IndexReader, iso, parse_query  # noqa: E402
from agent.customs.store.base import Index  # noqa: E402
from agent.customs.store.chain import Link  # noqa: E402
from agent.customs.store.model import ItemRow  # noqa: E402
from agent.customs.store.opening import open_index, open_index_reader  # noqa: E402
from agent.customs.store.sql import ITEM_COLS  # noqa: E402
from agent.signing.records import GENESIS_PREV  # noqa: E402

T0 = 1_793_000_000_000_000  # µs: the first capture time; records spread over 30 days
SPAN_US = 30 * 86_400 * 1_000_000
TYPES = ("motion", "covered", "moved", "dark", "frozen")


def synthetic(devices: int, rows: int) -> Iterator[tuple[ItemRow, Link]]:
    """Chained records, device-major, time-ordered per device (what an ingest stores)."""
    per = rows // devices
    for d in range(devices):
        device, site = f"dev-{d:05d}", f"site-{d % 10}"
        prev = GENESIS_PREV
        for seq in range(per):
            kind = "restart" if seq == 0 else "still" if seq % 4 == 0 else "event"
            extra: dict[str, Any] = {"type": TYPES[seq % len(TYPES)]} if kind == "event" else {}
            if seq % 97 == 0:
                extra["case_id"] = f"C-2026/{d:04d}"
            captured = T0 + seq * (SPAN_US // per) + d * 1000
            media = {"name": f"{seq:012d}.still.jpg", "sha256": "ab" * 32, "size": 250_000} if kind == "still" \
                else None
            body = json.dumps({"device_id": device, "site_id": site, "seq": seq, "kind": kind, "prev": prev,
                               "captured": {"wall_us": captured}, "extra": extra, "media": media,
                               "gps": {"lat": 31.2 + d / 1000, "lon": 121.4}}, sort_keys=True, separators=(",", ":"))
            item = hashlib.sha256(body.encode()).hexdigest()
            yield ItemRow.of(item, body.encode(), json.loads(body)), Link(seq, item, prev, kind, "boot", seq)
            prev = item


def fill(index: Index, devices: int, rows: int) -> float:
    started = time.perf_counter()
    batch: list[tuple[ItemRow, Link]] = []
    for pair in synthetic(devices, rows):
        batch.append(pair)
        if len(batch) == 1000:
            with index.transaction():
                for row, link in batch:
                    index.put_item(row, link)
            batch = []
    if batch:
        with index.transaction():
            for row, link in batch:
                index.put_item(row, link)
    return time.perf_counter() - started


def filters(devices: int) -> dict[str, dict[str, str]]:
    mid = iso(T0 + SPAN_US // 2)
    day = iso(T0 + SPAN_US // 2 + 86_400_000_000)
    return {
        "newest page (no filter)": {},
        "device": {"device": "dev-00007"},
        "device + 1 day": {"device": "dev-00007", "since": mid, "until": day},
        "site + 1 day": {"site": "site-3", "since": mid, "until": day},
        "kind=still": {"kind": "still"},
        "event_type=covered": {"event_type": "covered"},
        "case": {"case": f"C-2026/{min(devices - 1, 42):04d}"},
        "1 day, all devices": {"since": mid, "until": day},
    }


def plain_sql(params: dict[str, str], limit: int) -> tuple[str, list[Any]]:
    """The peer: the query someone writes by hand for the same filter (placeholders added by the caller)."""
    q = parse_query(params.items())
    where, args = [], list[Any]()
    for col, val in (("device", q.device), ("site", q.site), ("kind", q.kind), ("event_type", q.event_type),
                     ("case_id", q.case_id)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    if q.since_us is not None:
        where.append("captured_us >= ?")
        args.append(q.since_us)
    if q.until_us is not None:
        where.append("captured_us <= ?")
        args.append(q.until_us)
    sql = f"SELECT {ITEM_COLS} FROM items {'WHERE ' + ' AND '.join(where) if where else ''} " \
          f"ORDER BY captured_us DESC, item DESC LIMIT {limit}"
    return sql, args


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm the cache: every contender gets the same warm start
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def run_backend(name: str, spec: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from agent.customs.console.app import create_app
    from agent.customs.console.deps import ConsoleServices

    writer = open_index(spec)
    fill_s = fill(writer, args.devices, args.rows)
    writer.close()
    print(f"[{name}] filled {args.rows} rows through put_item in {fill_s:.1f} s "
          f"({args.rows / fill_s:.0f} rows/s)", flush=True)
    reader = IndexReader(open_index_reader(spec), name)
    ours = reader.index
    assert ours is not None
    peer = open_index_reader(spec)  # its own connection: the plain SELECT shares nothing with our layer
    conn: Any = peer.conn  # type: ignore[attr-defined]
    param = "%s" if spec.startswith("postgres") else "?"
    services = ConsoleServices(cfg=None, link=None, client=None, fleet=None,  # type: ignore[arg-type]
                               device_cas=None, index=reader)
    client = TestClient(create_app(services), base_url="http://127.0.0.1")
    out = []
    for label, params in filters(args.devices).items():
        query = parse_query([*params.items(), ("limit", str(args.limit))])
        sql, sargs = plain_sql(params, args.limit)
        sql = sql.replace("?", param)

        def plain(sql: str = sql, sargs: list[Any] = sargs) -> int:
            cur = conn.cursor()
            cur.execute(sql, sargs)
            n = len(cur.fetchall())
            conn.rollback()
            return n

        def store(query: Any = query) -> int:
            return len(ours.search(query))

        def api(params: dict[str, str] = params) -> int:
            r = client.get("/api/search", params={**params, "limit": str(args.limit)})
            return len(r.json()["rows"])

        def floor() -> int:  # the HTTP framing alone (TestClient, middleware, routing): a 404 under /api
            return client.get("/api/nothing-here").status_code

        n_plain, n_store, n_api = plain(), store(), api()
        assert n_plain == n_store == n_api, (label, n_plain, n_store, n_api)  # the same rows
        p = timed(plain, args.repeat)
        s = timed(store, args.repeat)
        a = timed(api, args.repeat)
        f = timed(floor, args.repeat)
        count = ours.count(query)
        out.append({"backend": name, "filter": label, "rows": n_plain, "matching": count,
                    "plain_p50_ms": round(p[0], 2), "plain_p95_ms": round(p[1], 2),
                    "store_p50_ms": round(s[0], 2), "store_p95_ms": round(s[1], 2),
                    "api_p50_ms": round(a[0], 2), "api_p95_ms": round(a[1], 2), "http_floor_p50_ms": round(f[0], 2),
                    "store_ratio": round(s[0] / p[0], 2), "api_ratio": round(a[0] / p[0], 2)})
        print(f"[{name}] {label:26s} {n_plain:4d} of {count:6d} | plain {p[0]:7.2f}/{p[1]:7.2f} ms | store "
              f"{s[0]:7.2f}/{s[1]:7.2f} ms x{s[0] / p[0]:.2f} | API {a[0]:7.2f}/{a[1]:7.2f} ms x{a[0] / p[0]:.2f} "
              f"(HTTP floor {f[0]:.2f} ms)",
              flush=True)
    peer.close()
    reader.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--limit", type=int, default=50, help="page size (the page's default)")
    ap.add_argument("--backend", default="sqlite,postgres")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        for backend in args.backend.split(","):
            if backend == "sqlite":
                results += run_backend("sqlite", str(Path(tmp) / "index.sqlite"), args)
            elif backend == "postgres":
                from tests.support.postgres import Postgres, pg_bin

                if pg_bin() is None:
                    print("[postgres] skipped: PostgreSQL is not installed", flush=True)
                    continue
                with Postgres() as pg:
                    results += run_backend("postgres", pg.dsn, args)
            else:
                ap.error(f"unknown backend {backend!r}")
    print("p50/p95 in ms; ratio = p50 / plain SELECT p50 (same run, same rows)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

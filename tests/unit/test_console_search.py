"""The console's search API over a real (SQLite) index: hostile officer input is a 400 with one line, never a 500.

The index is filled through the store API the ingest uses; the console opens it read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from agent.core.errors import ConfigError
from agent.customs.console.cli import open_reader
from agent.customs.console.config import load_console_config
from agent.customs.console.deps import get_index, get_optional_index
from agent.customs.console.index_reader import IndexReader
from agent.customs.console.search import BadQuery, parse_query, parse_time
from agent.customs.keys import init_officer
from agent.customs.store.chain import Link
from agent.customs.store.model import ItemRow
from agent.customs.store.opening import open_index, open_index_reader
from agent.signing.records import GENESIS_PREV
from tests.support.console_app import console_client
from tests.support.helpers import REPO

T0 = 1_795_000_000_000_000  # 2026-11-17T...Z in µs
DEVICES = ("cam-a", "cam-b")


def _rows(device: str, n: int) -> Iterator[tuple[ItemRow, Link]]:
    prev = GENESIS_PREV
    for seq in range(n):
        kind = "restart" if seq == 0 else ("still" if seq % 3 == 0 else "event")
        extra: dict[str, Any] = {"type": "covered" if seq % 5 == 0 else "motion"} if kind == "event" else {}
        if seq % 7 == 0:
            extra["case_id"] = "C-7/2026"
        media = {"name": f"{seq:08d}.jpg", "sha256": "ab" * 32, "size": 1000 + seq} if kind == "still" else None
        body = json.dumps({"device_id": device, "site_id": "site-1", "seq": seq, "kind": kind, "prev": prev,
                           "captured": {"wall_us": T0 + seq * 60_000_000}, "extra": extra, "media": media,
                           "gps": {"lat": 31.2, "lon": 121.4}}, sort_keys=True, separators=(",", ":"))
        item = hashlib.sha256(body.encode()).hexdigest()
        yield (ItemRow.of(item, body.encode(), json.loads(body)), Link(seq, item, prev, kind, "boot-1", seq * 1000))
        prev = item


@pytest.fixture(scope="module")
def index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "index.sqlite"
    writer = open_index(str(path))
    with writer.transaction():
        for device in DEVICES:
            for row, link in _rows(device, 30):
                writer.put_item(row, link)
    writer.close()
    return path


@pytest.fixture
def client(index_path: Path) -> Iterator[TestClient]:
    reader = IndexReader(open_index_reader(str(index_path)), str(index_path))
    yield console_client({get_index: reader, get_optional_index: reader})
    reader.close()


def test_filters_paging_and_detail(client: TestClient) -> None:
    page = client.get("/api/search", params={"device": "cam-a", "limit": 7}).json()
    assert page["count"] == 30 and [r["seq"] for r in page["rows"]] == list(range(29, 22, -1))
    seen = [r["seq"] for r in page["rows"]]
    while page["next"]:
        page = client.get("/api/search", params={"device": "cam-a", "limit": 7, "after": page["next"]}).json()
        assert page["count"] is None  # counted on the first page only
        seen += [r["seq"] for r in page["rows"]]
    assert seen == list(range(29, -1, -1))
    stills = client.get("/api/search", params={"kind": "still", "limit": 500}).json()
    assert stills["count"] == 18 and all(r["media"]["name"].endswith(".jpg") for r in stills["rows"])
    covered = client.get("/api/search", params={"event_type": "covered", "device": "cam-b"}).json()
    assert {r["seq"] for r in covered["rows"]} == {5, 10, 20, 25}
    case = client.get("/api/search", params={"case": "C-7/2026", "device": "cam-a"}).json()
    assert {r["seq"] for r in case["rows"]} == {0, 7, 14, 21, 28}
    since = client.get("/api/search", params={"device": "cam-a", "since": _iso(T0 + 10 * 60_000_000),
                                               "until": _iso(T0 + 12 * 60_000_000)}).json()
    assert [r["seq"] for r in since["rows"]] == [12, 11, 10]
    row = since["rows"][0]
    detail = client.get(f"/api/search/item/cam-a/{row['item']}").json()
    assert detail["record"]["seq"] == 12 and hashlib.sha256(detail["canonical"].encode()).hexdigest() == row["item"]
    assert detail["verify"].startswith("evidence-agent verify ") and "cam-a" in detail["verify"]
    devices = client.get("/api/search/devices").json()
    assert [(d["device"], d["records"], d["max_seq"]) for d in devices["devices"]] == [("cam-a", 30, 29),
                                                                                      ("cam-b", 30, 29)]
    assert devices["sites"] == ["site-1"]
    assert client.get("/api/search/findings", params={"device": "cam-a"}).json() == {"findings": [], "total": 0}


def _iso(us: int) -> str:
    from agent.customs.console.search import iso

    return iso(us)


HOSTILE = [
    ({"device": "cam-a' OR '1'='1"}, "device"),
    ({"device": "cam-a; DROP TABLE items;--"}, "device"),
    ({"site": "x" * 65}, "site"),
    ({"kind": "STILL"}, "kind"),
    ({"kind": "still\x00"}, "kind"),
    ({"event_type": "a b"}, "event_type"),
    ({"case": "../../etc/passwd"}, "case"),
    ({"case": "%"}, "case"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "9" * 5000}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "1e3"}, "limit"),
    ({"limit": "٣"}, "limit"),  # an Arabic-Indic digit: isdigit() but not ASCII
    ({"after": "garbage"}, "after"),
    ({"after": "1." + "g" * 64}, "after"),
    ({"after": "1" * 25 + "." + "a" * 64}, "after"),
    ({"after": "-5." + "a" * 64}, "after"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-13-45"}, "since"),
    ({"until": "2026-11-20T25:00"}, "until"),
    ({"until": "0001-01-01T00:00:00+14:00"}, "until"),
    ({"since": "2026-11-21", "until": "2026-11-20"}, "since"),
    ({"since": "2" * 100}, "since"),
    ({"sort": "captured_us; DELETE FROM items"}, "unknown parameter"),
]


@pytest.mark.parametrize(("params", "names"), HOSTILE)
def test_hostile_parameters_are_a_400_with_one_line(client: TestClient, params: dict[str, str], names: str) -> None:
    r = client.get("/api/search", params=params)
    assert r.status_code == 400, (params, r.text)
    detail = r.json()["detail"]
    assert detail.startswith(names) and "\n" not in detail and len(detail) < 300, detail


def test_repeated_parameter_and_nothing_written(client: TestClient, index_path: Path) -> None:
    r = client.get("/api/search?device=cam-a&device=cam-b")
    assert r.status_code == 400 and "more than once" in r.json()["detail"]
    assert client.get("/api/search/item/cam-a/" + "A" * 64).status_code == 400
    assert client.get("/api/search/item/cam-a/" + "0" * 64).status_code == 404
    assert client.get("/api/search/item/..%2F..%2Fetc/" + "0" * 64).status_code in (400, 404)
    assert client.get("/api/search/devices", params={"site": "a/b"}).status_code == 400
    assert client.get("/api/search/findings", params={"kind": "x;y"}).status_code == 400
    # the reader can never write, whatever reaches it
    reader = IndexReader(open_index_reader(str(index_path)), "t")
    with pytest.raises(Exception, match=r"readonly|read-only"):
        reader.index.conn.execute("DELETE FROM items")  # type: ignore[attr-defined]
    reader.close()
    assert client.get("/api/search", params={"device": "cam-a"}).json()["count"] == 30


def test_parse_query_accepts_what_the_page_sends() -> None:
    q = parse_query([("device", "cam-a"), ("site", ""), ("since", "2026-11-20"), ("until", "2026-11-20"),
                     ("kind", "still"), ("event_type", ""), ("case", "C-7/2026"), ("limit", "500")])
    assert q.device == "cam-a" and q.site is None and q.case_id == "C-7/2026" and q.limit == 500
    assert q.until_us is not None and q.since_us is not None and q.until_us - q.since_us == 86_400_000_000 - 1
    assert parse_time("since", "2026-11-20T08:00:00+02:00") == parse_time("since", "2026-11-20T06:00:00Z")
    assert parse_time("since", "2026-11-20T06:00") == parse_time("since", "2026-11-20T06:00:00.000000Z")
    with pytest.raises(BadQuery):
        parse_query([("limit", " 5")])


def test_no_index_configured_is_a_503(tmp_path: Path) -> None:
    r = console_client({}).get("/api/search")  # the real provider: no index in the services
    assert r.status_code == 503 and "[index] url" in r.json()["detail"]


def test_index_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^index\.url: .*missing\.sqlite: no such index file"):
        open_reader(str(tmp_path / "missing.sqlite"))
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match=r"^index\.url: not a readable index"):
        open_reader(str(tmp_path / "junk.sqlite"))
    with pytest.raises(ConfigError, match=r"^index\.url: cannot open the PostgreSQL index postgresql://…@127"):
        open_reader("postgresql://console:secret@127.0.0.1:1/customs")
    init_officer(tmp_path / "k", "officer-alice")
    cfg = tmp_path / "console.toml"
    cfg.write_text('[broker]\nurl = "mqtt://127.0.0.1:1"\n[officer]\nkeys = "k"\n[index]\nurl = "idx/index.sqlite"\n')
    assert load_console_config(cfg).index.url == str(tmp_path / "idx" / "index.sqlite")
    proc = subprocess.run([sys.executable, "-m", "agent.customs.cli", "console", "--config", str(cfg)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("evidence-officer: ") and "index.url: " in last and "index.sqlite" in last, proc.stderr


def test_postgres_reader_is_read_only_and_refuses_an_unmigrated_database() -> None:
    from tests.support.postgres import postgres_or_skip

    pg = postgres_or_skip()
    try:
        import psycopg

        with pytest.raises(ConfigError, match=r"^index\.url: no index schema yet"):
            open_reader(pg.dsn)  # nothing migrated it: the console does not create the ingest's tables
        writer = open_index(pg.dsn)
        with writer.transaction():
            for row, link in _rows("cam-a", 3):
                writer.put_item(row, link)
        writer.close()
        reader = open_reader(pg.dsn)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.index.conn.execute("DELETE FROM items")
        reader.index.conn.rollback()
        assert reader.call(lambda ix: ix.count(parse_query([]))) == 3
        # the server drops the console's connection (restart, failover): one 503, then a fresh connection
        pid = reader.index.conn.info.backend_pid
        with psycopg.connect(pg.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(HTTPException) as failed:
            reader.call(lambda ix: ix.count(parse_query([])))
        assert failed.value.status_code == 503 and "secret" not in str(failed.value.detail)
        assert reader.call(lambda ix: ix.count(parse_query([]))) == 3
        reader.close()
    finally:
        pg.stop()


def test_a_broad_count_stops_at_the_cap(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.customs.console import search

    monkeypatch.setattr(search, "COUNT_CAP", 10)
    page = client.get("/api/search", params={"device": "cam-a", "limit": 5}).json()
    assert page["count"] == 10 and page["count_capped"] is True and len(page["rows"]) == 5
    page = client.get("/api/search", params={"device": "cam-a", "kind": "still"}).json()
    assert page["count"] == 9 and page["count_capped"] is False

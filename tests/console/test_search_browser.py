"""The console's search page in a real browser, over an index a real ingest filled.

A small simulated fleet (the device ``Sealer``, genuine signed records, back-dated capture times) publishes
through Mosquitto with TLS and the shipped ACL, each device with its own certificate; ``evidence-officer
ingest --index`` (SQLite, or PostgreSQL started by the test) stores and indexes it; ``evidence-officer
console --config`` with ``[index] url`` serves the page; Debian chromium (Playwright) clicks through it.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.core.model import NO_GPS, GpsFix, GpsReading, Moment, TimeQuality
from agent.customs.store.model import Query
from agent.customs.store.opening import open_index_reader
from agent.wire.mqtt import MqttLink
from tests.support.console_stack import ConsoleStack, build_console_stack, chromium, need_browser
from tests.support.helpers import REPO, wait_for
from tests.support.sim_fleet import Fleet, FleetDevice, Message

DEVICES = 3
PER_DEVICE = 24  # back-dated records per device, one an hour from BASE; plus each device's restart record
BASE = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)
TYPES = ("motion", "covered", "moved")
CASE = "C-2026/0042"
ROWS = DEVICES * (PER_DEVICE + 1) + 1  # + the twin's record that breaks the first device's chain
GPS = GpsReading(fix=GpsFix(31.2304, 121.4737, 3, "2026-11-20T08:00:00Z", hdop=0.9, talker="sim"), age_s=0.2)


def _seal(dev: FleetDevice, kind: str, when: dt.datetime, extra: dict[str, Any], media: bytes | None,
          fix: bool) -> list[Message]:
    """One record captured at ``when`` (the sim fleet seals "now"; this test needs a spread of days)."""
    dev.pending, dev._media = [], media
    moment = Moment(wall_ns=int(when.timestamp()) * 10**9, mono_ns=dev.clock.mono_ns(), gps=GPS if fix else NO_GPS,
                    time=TimeQuality(source="ntp", synced=True))
    if media is None:
        dev.sealer.seal(kind, moment, extra=extra)
    else:
        dev.sealer.seal(kind, moment, media=media, media_type="image/jpeg", ext="jpg", extra=extra)
    out = [m for m in dev.pending if m.is_record] + [m for m in dev.pending if not m.is_record]
    dev.pending = []
    return out


def fleet_messages(fleet: Fleet) -> dict[str, list[Message]]:
    """Per device: restart, then PER_DEVICE items (every 4th a still with media, the others typed events)."""
    out = {d.device_id: list(d.pending) for d in fleet.devices}
    for d in fleet.devices:
        d.pending = []
    for n, d in enumerate(fleet.devices):
        for i in range(PER_DEVICE):
            when = BASE + dt.timedelta(hours=i, minutes=n)
            extra: dict[str, Any] = {} if i % 4 == 0 else {"type": TYPES[i % 3]}
            if n == 1 and 10 <= i <= 13:
                extra["case_id"] = CASE
            media = os.urandom(2048) if i % 4 == 0 else None
            out[d.device_id] += _seal(d, "still" if media else "event", when, extra, media, fix=i % 2 == 0)
    # the first device's key in a second sealer: its own chain from seq 0 (a fork, kept aside by the ingest),
    # and its seq 25 names a seq 24 the index never saw: a broken chain link, a finding in the index
    twin = FleetDevice(fleet.devices[0].device_id, fleet.devices[0].sealer.identity)
    out[twin.device_id] += twin.pending
    for _ in range(PER_DEVICE):
        twin.seal("event")
    out[twin.device_id] += twin.seal("event")
    return out


@dataclass
class Setup:
    st: ConsoleStack
    url: str
    out: Path
    backend: str


def _ingest(st: ConsoleStack, out: Path, ca: Path, index: str) -> subprocess.Popen[bytes]:
    tls = st.broker.pki.client("ingest-1")  # type: ignore[union-attr]
    log = (st.root / "ingest.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", st.broker.url, "--cafile", str(tls.ca),
         "--cert", str(tls.cert), "--key", str(tls.key), "--client-id", "ingest-1", "--out", str(out),
         "--trust-ca", str(ca), "--index", index],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT)


def _publish(st: ConsoleStack, messages: dict[str, list[Message]]) -> None:
    for device, msgs in messages.items():  # each device with its own certificate: the ACL allows its subtree only
        link = MqttLink(st.broker.mqtt_config(device, client_id=f"{device}-uplink"), name=device)
        link.start()
        try:
            assert link.wait_connected(15), link.last_error
            for m in msgs:
                assert link.publish_wait(m.topic, m.payload, user_props=m.props, qos=1).ok
        finally:
            link.close(offline=False)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    need_browser()
    pg = None
    root = tmp_path_factory.mktemp(f"search-{request.param}")
    if request.param == "postgres":
        from tests.support.postgres import postgres_or_skip

        pg = postgres_or_skip()
        index = pg.dsn
    else:
        index = str(root / "index.sqlite")
    st = build_console_stack(root)
    out = root / "received"
    ingest = None
    try:
        fleet = Fleet(DEVICES, root / "fleet-ca.pem", prefix="cam")
        st.device_ca.write_bytes(fleet.ca_file.read_bytes())  # the console's officer.device_ca
        ingest = _ingest(st, out, fleet.ca_file, index)
        wait_for(lambda: "as ingest-1" in st.broker.log_text() or ingest.poll() is not None, timeout=90)
        assert ingest.poll() is None, (st.root / "ingest.log").read_text()
        _publish(st, fleet_messages(fleet))
        reader = None

        def indexed() -> bool:
            nonlocal reader
            if reader is None:
                try:
                    reader = open_index_reader(index)
                except Exception:  # not created yet
                    return False
            rows = reader.search(Query(limit=500))
            return len(rows) == ROWS and all(r.media_done for r in rows) and bool(reader.findings())

        wait_for(indexed, timeout=120, step=0.5)
        assert reader is not None
        reader.close()
        _proc, url = st.start_console(extra_toml=f'[index]\nurl = "{index}"\n[inspections]\nevidence = "{out}"\n')
        yield Setup(st, url, out, request.param)
    finally:
        if ingest is not None:
            ingest.terminate()
            ingest.wait(30)
        st.close()
        if pg is not None:
            pg.stop()


@pytest.fixture(scope="module")
def browser(setup: Setup) -> Iterator[Any]:
    with chromium() as b:
        yield b


def _open(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(url)
    _settled(page)
    return page


def _settled(page: Any) -> dict[str, Any]:
    page.wait_for_function("() => window.searchStats && window.searchStats.pages > 0 && !window.searchStats.loading",
                           timeout=20_000)
    stats: dict[str, Any] = page.evaluate("() => ({...window.searchStats})")
    assert stats["error"] is None, stats
    return stats


def _rows(page: Any) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = page.evaluate(
        "() => [...document.querySelectorAll('#results tbody tr[data-item]')].map(tr => ({device: tr.dataset.device,"
        " seq: tr.dataset.seq, kind: tr.children[4].textContent, event: tr.children[5].textContent,"
        " captured: tr.children[0].textContent, item: tr.dataset.item}))")
    return rows


def _submit(page: Any, **fields: str) -> dict[str, Any]:
    page.click("#btn-clear")
    _settled(page)
    for name, value in fields.items():
        sel = f"#filters [name={name}]"
        if page.eval_on_selector(sel, "e => e.tagName") == "SELECT":
            page.select_option(sel, value)
        else:
            page.fill(sel, value)
    page.evaluate("() => { window.searchStats.pages = 0; }")
    page.click("#btn-search")
    return _settled(page)


def test_filters_paging_and_a_shareable_link(setup: Setup, browser: Any) -> None:
    page = _open(browser, f"{setup.url}/search")
    stats = _settled(page)
    assert stats["count"] == ROWS and stats["rows"] == 50
    first = _rows(page)[0]
    assert (first["device"], first["seq"]) == ("cam-00000", str(PER_DEVICE + 1))  # the twin's: sealed last
    page.evaluate("() => { window.searchStats.pages = 0; }")
    page.click("#btn-more")
    stats = _settled(page)
    rows = _rows(page)
    assert stats["rows"] == ROWS and len({r["item"] for r in rows}) == ROWS  # every row once
    assert [r["captured"] for r in rows] == sorted((r["captured"] for r in rows), reverse=True)
    assert page.is_hidden("#btn-more")
    assert f"{ROWS} of {ROWS} records" in page.inner_text("#counts")

    stats = _submit(page, device="cam-00001")
    assert stats["count"] == PER_DEVICE + 1 and {r["device"] for r in _rows(page)} == {"cam-00001"}
    assert parse_qs(urlsplit(page.url).query) == {"device": ["cam-00001"]}

    stats = _submit(page, kind="still")
    assert stats["count"] == DEVICES * PER_DEVICE // 4 and {r["kind"] for r in _rows(page)} == {"still"}

    stats = _submit(page, event_type="covered")
    covered = [i for i in range(PER_DEVICE) if i % 4 and TYPES[i % 3] == "covered"]
    assert stats["count"] == DEVICES * len(covered) and {r["event"] for r in _rows(page)} == {"covered"}

    stats = _submit(page, since="2026-11-20T10:00:00", until="2026-11-20T12:59:59")
    assert stats["count"] == DEVICES * 3  # the 10:00, 11:00 and 12:00 records of each device
    assert all(r["captured"][:13] in ("2026-11-20 10", "2026-11-20 11", "2026-11-20 12") for r in _rows(page))

    stats = _submit(page, case=CASE)
    assert stats["count"] == 4 and {r["device"] for r in _rows(page)} == {"cam-00001"}

    # the link keeps the filters: a second tab opens the same search
    shared = browser.new_page(viewport={"width": 1600, "height": 1000})
    shared.goto(f"{setup.url}/search?device=cam-00002&kind=event&until=2026-11-20")
    stats = _settled(shared)
    assert shared.eval_on_selector("#filters [name=device]", "e => e.value") == "cam-00002"
    assert shared.eval_on_selector("#filters [name=kind]", "e => e.value") == "event"
    assert stats["count"] == len([i for i in range(16) if i % 4])  # 08:00..23:00 on the 20th
    shared.close()

    # a hostile link is one line on the page, not a broken page
    bad = browser.new_page()
    bad.goto(f"{setup.url}/search?device=x%27%20OR%201%3D1")
    bad.wait_for_function("() => window.searchStats && window.searchStats.error", timeout=20_000)
    assert "device" in bad.inner_text("#error") and "not a valid" in bad.inner_text("#error")
    bad.close()
    page.close()


def test_row_detail_shows_the_record_findings_and_how_to_verify(setup: Setup, browser: Any) -> None:
    page = _open(browser, f"{setup.url}/search?device=cam-00000&kind=restart")
    assert _settled(page)["count"] == 1
    page.click("#results tbody tr[data-item]")
    page.wait_for_function("() => window.searchStats.detail !== null", timeout=10_000)
    detail = page.inner_text("#detail")
    assert "cam-00000 #0 — restart" in detail
    hint = page.inner_text("#verify-hint")
    assert hint == f"evidence-agent verify {setup.out}/cam-00000 --ca {setup.st.device_ca}", hint
    assert "chain" in page.inner_text("#detail-findings")  # the twin's record after a seq 24 it did not seal
    assert "chain" in page.inner_text("#findings")
    # the twin's seq 0 is a fork: the ingest puts it in the index's findings; its record is kept aside
    # (forks/), so it is listed without an "open record" link
    assert page.locator("#findings li.kind-fork").count() == 1
    assert page.locator("#findings li.kind-fork a.open-record").count() == 0
    page.screenshot(path=str(setup.st.root / f"search-findings-{setup.backend}.png"), full_page=True)
    page.click("#findings a.open-record")  # the finding names the record that broke the chain
    page.wait_for_function("() => window.searchStats.detail.seq === 25", timeout=10_000)
    assert "cam-00000 #25 — event" in page.inner_text("#detail-title")
    _submit(page, kind="still", device="cam-00002")
    page.click("#results tbody tr[data-item]")
    page.wait_for_function("() => window.searchStats.detail && window.searchStats.detail.device === 'cam-00002'",
                           timeout=10_000)
    fields = page.inner_text("#detail-fields")
    assert "Media SHA-256" in fields and "stored" in fields and "31.23040, 121.47370" in fields
    assert "No findings for this device." in page.inner_text("#detail-findings")
    page.screenshot(path=str(setup.st.root / f"search-{setup.backend}.png"), full_page=True)


def test_fleet_page_shows_the_index_figures(setup: Setup, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(f"{setup.url}/fleet")
    page.wait_for_selector("#fleet td.idx[data-records]", timeout=20_000)
    text = page.inner_text("#fleet")
    assert f"{PER_DEVICE + 1} records" in text and f"newest #{PER_DEVICE}" in text
    page.screenshot(path=str(setup.st.root / f"fleet-{setup.backend}.png"))
    page.click("#fleet td.idx a >> nth=0")
    _settled(page)
    assert "/search?device=cam-0000" in page.url
    page.close()

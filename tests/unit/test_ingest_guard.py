"""Ingest against a compromised device, message by message (the same attacks go through the broker and the
real CLI in tests/security). Every one of these wrote, stalled or replaced before the trust-boundary work."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.customs.guard import Limits, too_deep
from agent.customs.ingest import Ingest
from agent.customs.store.sqlite import SqliteIndex
from agent.wire.mqtt import Inbound
from tests.support.hostile import Device, chunk_msgs, raw_chunk, record_msg, sidecar
from tests.support.ingest_path import deliver


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    ing = Ingest(tmp_path / "out", limits=Limits(max_partial_sets=4, quarantine_files=50, max_forks=2))
    yield ing
    ing.close()


@pytest.fixture
def mal(tmp_path: Path) -> Iterator[Device]:
    dev = Device(tmp_path / "mal", "dev-mal")
    yield dev
    dev.close()


@pytest.fixture
def good(tmp_path: Path) -> Iterator[Device]:
    dev = Device(tmp_path / "good", "dev-good")
    yield dev
    dev.close()


def _refusals(ingest: Ingest, device: str) -> dict[str, int]:
    return ingest.report()[device].refusals


@pytest.mark.parametrize("name", ["../../../escaped.jpg", "/tmp/absolute-evil.jpg", "000000000001.still.sh",
                                  "000000000001.still.jpg/../../x.jpg", "000000000002.still.jpg"])
def test_media_name_must_be_canonical(ingest: Ingest, mal: Device, tmp_path: Path, name: str) -> None:
    item = mal.still(b"jpeg" * 100)
    forged = mal.forge(item, media={**item.record["media"], "name": name})
    deliver(ingest, record_msg(mal, forged))
    assert _refusals(ingest, "dev-mal") == {"bad_media_name": 1}
    assert not (tmp_path / "escaped.jpg").exists() and not Path("/tmp/absolute-evil.jpg").exists()
    assert not list((tmp_path / "out" / "dev-mal").rglob("*.rec")) if (tmp_path / "out" / "dev-mal").exists() \
        else True


def test_fork_keeps_the_first_record_and_reports_the_second(ingest: Ingest, mal: Device, tmp_path: Path) -> None:
    first = mal.event()
    deliver(ingest, record_msg(mal, sidecar(first)))
    for i in range(4):
        deliver(ingest, record_msg(mal, mal.forge(first, extra={"type": f"rewritten-{i}"})))
    deliver(ingest, record_msg(mal, sidecar(first)))  # a plain redelivery is a duplicate, not a fork
    stored = tmp_path / "out" / "dev-mal" / "items" / "000000" / f"{first.seq:012d}.event.rec"
    assert stored.read_bytes() == sidecar(first)
    rep = ingest.report()["dev-mal"]
    assert rep.fork_count == 4 and rep.duplicates == 1 and rep.findings
    assert len(list((tmp_path / "out" / "dev-mal" / "forks").rglob("*.rec"))) == 2  # max_forks bounds the copies


def test_forks_are_findings_in_the_index_as_many_as_are_kept(mal: Device, tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "index.sqlite")
    index.migrate()
    ingest = Ingest(tmp_path / "out", limits=Limits(max_forks=2), index=index)
    try:
        first = mal.event()
        deliver(ingest, record_msg(mal, sidecar(first)))
        for i in range(5):  # a forger with the device key: the report counts all, the index keeps max_forks
            deliver(ingest, record_msg(mal, mal.forge(first, extra={"type": f"rewritten-{i}"})))
        forks = [f for f in index.findings("dev-mal") if f.kind == "fork"]
        assert ingest.report()["dev-mal"].fork_count == 5
    finally:
        ingest.close()
        index.close()
    assert len(forks) == 2 and all(f.seq == first.seq and "the first stands" in f.detail for f in forks)


def test_fork_in_the_same_batch_never_replaces_the_first(ingest: Ingest, mal: Device, tmp_path: Path) -> None:
    """Sidecars are written before the store lock (staged): a record and its forks for one seq in one batch
    must each get their own staged file, and only the first reaches the vault."""
    first = mal.event()
    forks = [mal.forge(first, extra={"type": f"rewritten-{i}"}) for i in range(3)]
    done = ingest.handle_batch([record_msg(mal, sidecar(first)), record_msg(mal, sidecar(first)),
                                *(record_msg(mal, f) for f in forks)])
    assert done == [True] * 5
    items = tmp_path / "out" / "dev-mal" / "items"
    assert (items / "000000" / f"{first.seq:012d}.event.rec").read_bytes() == sidecar(first)
    assert [p.name for p in items.rglob("*") if p.is_file()] == [f"{first.seq:012d}.event.rec"]  # no leftovers
    rep = ingest.report()["dev-mal"]
    assert rep.fork_count == 3 and rep.duplicates == 1


def test_poison_messages_are_refused_and_never_raise(ingest: Ingest, mal: Device) -> None:
    item = mal.event()
    deep = b"[" * 100_000 + b"]" * 100_000
    sends = [
        record_msg(mal, deep + b"\n{}"),
        record_msg(mal, mal.forge(item, seq=1.5)),
        record_msg(mal, mal.forge(item, seq=2**53 - 1)),
        record_msg(mal, mal.forge(item, seq=-1)),
        record_msg(mal, mal.forge(item, kind="k" * 500)),
        raw_chunk(mal, offset=2**62, size=2**63),
        raw_chunk(mal, seq="9" * 40, name="x.jpg"),
        raw_chunk(mal, name="n" * 10_000),
        Inbound(f"{mal.topic}/status", b"[" * 50_000, 1, False),
        Inbound(f"{mal.topic}/nonsense", b"", 1, False),
        Inbound("evidence/../x/record", b"", 1, False),
    ]
    deliver(ingest, *sends)  # every one acknowledged: an exception would leave it unacknowledged
    rep = ingest.report()["dev-mal"]
    assert rep.refused == len(sends) - 1
    assert set(rep.refusals) >= {"too_deep", "bad_seq", "bad_kind", "too_large", "bad_media_name",
                                 "bad_topic"}


def test_a_handler_crash_is_a_counted_refusal(ingest: Ingest, mal: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingest, "_record", boom)
    deliver(ingest, record_msg(mal, sidecar(mal.event())))
    assert _refusals(ingest, "dev-mal") == {"internal_error": 1}


def test_chunk_metadata_must_describe_the_file(ingest: Ingest, mal: Device, tmp_path: Path) -> None:
    """A 100-byte chunk declaring gigabytes, or a chunk count that does not fit the size, is refused at once."""
    # segments: the geometry under the 1 GiB item limit (a still is also held to max_still_bytes, 32 MiB)
    deliver(ingest, raw_chunk(mal, kind="segment", size=2 * 10**9, total=1))
    deliver(ingest, raw_chunk(mal, kind="segment", size=10**9, total=10**7, index=5, offset=500))
    deliver(ingest, raw_chunk(mal, kind="segment", size=5000, total=3, index=1, offset=4000, data=b"y" * 1000))
    assert _refusals(ingest, "dev-mal") == {"bad_chunk": 2, "too_large": 1}
    deliver(ingest, raw_chunk(mal, size=33 << 20, total=1000, index=1, offset=4096 * 7, data=b"s" * 4096))
    assert _refusals(ingest, "dev-mal") == {"bad_chunk": 2, "too_large": 2}  # a 33 MiB still: over max_still_bytes
    assert not any((tmp_path / "out" / ".ingest" / "partial").rglob("*.*"))


def test_a_one_chunk_file_that_is_not_what_it_claims_is_refused_and_leaves_nothing(
        ingest: Ingest, mal: Device, tmp_path: Path) -> None:
    """A file in one chunk skips the chunk-set bookkeeping: its size and SHA-256 are checked on arrival."""
    deliver(ingest, raw_chunk(mal, size=100, sha256="b" * 64))  # right size, wrong hash
    deliver(ingest, raw_chunk(mal, item="c" * 64, size=100, sha256=hashlib.sha256(b"x" * 100).hexdigest()))
    assert _refusals(ingest, "dev-mal") == {"media_mismatch": 1}
    assert [p.name for p in (tmp_path / "out" / ".ingest" / "partial").rglob("*.*")] == ["c" * 64 + ".1"]


def test_unfinished_chunk_sets_are_bounded_per_device(ingest: Ingest, mal: Device, tmp_path: Path) -> None:
    for i in range(10):
        deliver(ingest, raw_chunk(mal, item=f"{i:064x}", size=8192, total=2, data=b"z" * 4096))
    assert len(list((tmp_path / "out" / ".ingest" / "partial" / "dev-mal").iterdir())) == 4
    assert ingest.report()["dev-mal"].partials_dropped == 6


def test_one_device_cannot_suppress_anothers_media(ingest: Ingest, good: Device, mal: Device,
                                                   tmp_path: Path) -> None:
    data = os.urandom(10_000)
    item = good.still(data)
    # the hostile device claims the good item's hash first (it is public: it is on the record topic)
    bogus = b"x" * 100  # complete and self-consistent: before, it filled the media table under the good item
    deliver(ingest, raw_chunk(mal, item=item.record_hash, sha256=hashlib.sha256(bogus).hexdigest(), data=bogus))
    deliver(ingest, record_msg(good, sidecar(item)))
    deliver(ingest, *chunk_msgs(good, item, data))
    media = tmp_path / "out" / "dev-good" / "items" / "000000" / item.record["media"]["name"]
    assert media.read_bytes() == data
    assert ingest.report()["dev-good"].incomplete == []


def test_report_streams_a_huge_seq(ingest: Ingest, mal: Device) -> None:
    item = mal.event()
    deliver(ingest, record_msg(mal, sidecar(item)))
    deliver(ingest, record_msg(mal, mal.forge(item, seq=10**11)))
    rep = ingest.report()["dev-mal"]
    assert rep.missing_count == 10**11 - 1 and len(rep.missing) == 1000 and rep.max_seq == 10**11


def test_quarantine_is_bounded(ingest: Ingest, mal: Device, tmp_path: Path) -> None:
    deliver(ingest, *(record_msg(mal, b"junk %d" % i) for i in range(80)))
    assert ingest.report()["dev-mal"].refused == 80
    assert len(list((tmp_path / "out" / ".ingest" / "quarantine" / "dev-mal").glob("*.json"))) == 50


def test_json_depth_check() -> None:
    doc = b'{"a": [1, {"b": "[[[[\\"]"}]}'
    assert not too_deep(doc, 3) and too_deep(doc, 2)
    assert not too_deep(b'"\\"[["', 1) and too_deep(b"[" * 100, 32) and too_deep(b"]]", 32)
    assert not too_deep(b"[" + b"[]," * 1000 + b"[]]", 2)
    assert Limits.parse(["max_chunks=10", "partial-max-age-s=1.5"]) == Limits(max_chunks=10, partial_max_age_s=1.5)
    with pytest.raises(ValueError, match="unknown"):
        Limits.parse(["nope=1"])


def test_an_unregistered_site_is_refused(mal: Device, tmp_path: Path) -> None:
    """Behind a broker without the site-bound ACL, one device could fill the fleet with phantom sites."""
    from agent.customs.broker.registry import Registry

    ingest = Ingest(tmp_path / "reg-out", registry=Registry({"dev-mal": "site-1"}))
    try:
        phantoms = [Inbound(f"evidence/phantom-{i}/dev-mal/status", b'{"ok": true}', 1, True) for i in range(20)]
        item = mal.event()
        deliver(ingest, *phantoms, record_msg(mal, sidecar(item)),
                Inbound("evidence/phantom/dev-mal/record", sidecar(item), 1, False),
                Inbound("evidence/site-1/dev-unknown/status", b"{}", 1, True))
        rep = ingest.report()
        assert rep["dev-mal"].records == 1 and rep["dev-mal"].refusals == {"unregistered_site": 21}
        assert rep["dev-mal"].status is None and rep["dev-unknown"].refusals == {"unregistered_site": 1}
    finally:
        ingest.close()


def test_handle_is_the_one_message_case_of_the_batch_path(ingest: Ingest, mal: Device,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = ingest.handle_batch
    monkeypatch.setattr(ingest, "handle_batch", lambda msgs: seen.append(len(msgs)) or real(msgs))
    assert ingest.handle(record_msg(mal, sidecar(mal.event()))) is True
    assert seen == [1] and ingest.report()["dev-mal"].records == 1


def test_a_status_claiming_a_huge_delivered_seq_is_streamed(ingest: Ingest, mal: Device) -> None:
    """lost_after_delivery walks stored seqs and counts the tail arithmetically: no range over a device's claim."""
    status = {"last_sealed": {"seq": 10**11}, "outbox": {"pending": 0, "in_flight": 0, "rejected": 0}}
    deliver(ingest, record_msg(mal, sidecar(mal.event())),
            Inbound(f"{mal.topic}/status", json.dumps(status).encode(), 1, True))
    rep = ingest.report()["dev-mal"]
    assert rep.lost_after_delivery_count == 10**11 and len(rep.lost_after_delivery) == 1000
    assert rep.lost_after_delivery[:2] == [0, 2] and rep.findings  # seq 1 is stored
    for odd in ({"last_sealed": {"seq": True}, "outbox": status["outbox"]},
                {"last_sealed": {"seq": 5}, "outbox": {"pending": 1, "in_flight": 0, "rejected": 0}},
                {"last_sealed": {"seq": 5}, "outbox": {"pending": 0, "in_flight": 0, "rejected": 2}}, [1], "x"):
        deliver(ingest, Inbound(f"{mal.topic}/status", json.dumps(odd).encode(), 1, True))
        assert ingest.report()["dev-mal"].lost_after_delivery_count == 0, odd

"""The outbox's SQLite store on its own: order, cuts, acknowledgements, delivery and rejection survive a reopen."""

from __future__ import annotations

from pathlib import Path

from agent.uplink.outbox_store import PRIORITY, OutboxStore


def _message(store: OutboxStore, channel: str, payload: bytes) -> None:
    store.add(PRIORITY.get(channel, 1), channel, f"item-{channel}", None, None, payload, None, len(payload),
              [("item", f"item-{channel}")], "application/json")


def test_order_cuts_acks_and_delivery_survive_a_reopen(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.sqlite")
    with store.transaction(durable=True):
        _message(store, "receipt", b"r" * 10)
        _message(store, "record", b"{}")
    first, second = store.pending()
    assert (first.channel, second.channel) == ("record", "receipt")  # records before receipts
    assert first.props == (("item", "item-record"),) and not first.chunked

    store.cut(second.id, 4, 3)
    with store.transaction(durable=False):
        store.ack_chunk(second.id, 0)
        store.ack_chunk(second.id, 2)
    store.close()

    store = OutboxStore(tmp_path / "outbox.sqlite")
    receipt = store.get(second.id)
    assert receipt is not None and receipt.chunked and (receipt.chunk_size, receipt.total) == (4, 3)
    assert store.acked(second.id) == {0, 2}
    store.cut(second.id, 2, None)  # re-cut smaller: acknowledgements of the old cut no longer count
    assert store.acked(second.id) == set()

    store.deliver(receipt)
    assert store.is_delivered("item-receipt", "receipt") and store.get(second.id) is None
    store.reject(first.id, "PACKET_TOO_LARGE (0x95)")
    assert store.counts().pending == 0 and store.counts().rejected == 1
    assert store.rejected()[0]["reason"] == "PACKET_TOO_LARGE (0x95)"
    store.retry_rejected()
    assert [e.id for e in store.pending()] == [first.id]
    store.close()

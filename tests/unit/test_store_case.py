"""The index files every item of a case under its case number, whichever field of ``extra`` carries it."""

from __future__ import annotations

from typing import Any

from agent.customs.store.model import ItemRow


def _record(extra: dict[str, Any]) -> dict[str, Any]:
    return {"device_id": "cam-1", "site_id": "farm-1", "seq": 7, "kind": "still", "extra": extra,
            "captured": {"wall_us": 1}, "sealed": {"wall_us": 2}, "gps": {}, "media": None}


def test_items_sealed_during_a_case_carry_its_number() -> None:
    """Items sealed between inspection_start and inspection_end carry ``extra.inspection.case``."""
    row = ItemRow.of("h", b"{}", _record({"label": "location", "inspection": {"case": "C-1/2", "start_seq": 3}}))
    assert row.case_id == "C-1/2"


def test_the_case_records_themselves_and_junk() -> None:
    assert ItemRow.of("h", b"{}", _record({"case": "C-9"})).case_id == "C-9"
    assert ItemRow.of("h", b"{}", _record({"case": "C-9", "inspection": {"case": "C-9"}})).case_id == "C-9"
    for junk in ({"inspection": "C-9"}, {"inspection": {"case": 5}}, {"case": ["x"]}, {}):
        assert ItemRow.of("h", b"{}", _record(junk)).case_id is None

"""One vocabulary: ids, kinds, event types and labels come from agent/core/vocab.py everywhere, pages included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from agent.core import vocab
from agent.customs.console import pages
from agent.customs.console.search import BadQuery, parse_query
from agent.customs.inspection.model import Inspection
from agent.device.config import parse_config
from agent.uplink.command_controller import InspectionStartArgs, LiveSessionArgs
from agent.wire import commands
from agent.wire.topics import DeviceTopics, check_segment
from tests.support.helpers import REPO

LONGEST = "d" * vocab.ID_MAX
TOO_LONG = "d" * (vocab.ID_MAX + 1)


def test_no_module_or_page_keeps_its_own_copy() -> None:
    copies = [re.compile(r"A-Za-z0-9\]\[A-Za-z0-9\._/?-\]\{0,6"),  # an id or case pattern
              re.compile(r"\"inspection_start\",\s*\"inspection_end\""),  # the record kinds
              re.compile(r"\"identity_document\",\s*\"power_of_attorney\""),  # the check-in steps
              re.compile(r"Representative's identity document"),  # their titles
              re.compile(r"\(\"event\",\s*\"tamper\",\s*\"alert\"\)")]  # the alert kinds
    found = []
    for path in sorted((REPO / "agent").rglob("*")):
        if path.suffix not in (".py", ".js", ".html") or path.name == "vocab.py":
            continue
        text = path.read_text()
        found += [f"{path.relative_to(REPO)}: {c.pattern}" for c in copies if c.search(text)]
    assert found == []


def test_the_id_the_device_can_be_provisioned_with_is_the_id_everything_accepts() -> None:
    """At most 63 characters: the device config (and provisioning) always allowed 63, customs allowed 64."""
    cfg = parse_config({"device": {"id": LONGEST, "site_id": LONGEST}})
    assert cfg.device.id == LONGEST
    with pytest.raises(Exception, match="device"):
        parse_config({"device": {"id": TOO_LONG}})
    DeviceTopics(LONGEST, LONGEST)
    assert commands._ID_RE is vocab.ID_RE  # officer ids in the device's trust store
    for refused in (TOO_LONG, "dev\n", "-dev", "a/b", "+", ""):
        with pytest.raises(ValueError):
            check_segment(refused, "device id")
        with pytest.raises(ValidationError):
            LiveSessionArgs(session=refused)
        with pytest.raises(ValidationError):
            InspectionStartArgs(case="C-1", enterprise="E", officers=[refused])
        if refused:  # an empty filter is no filter
            with pytest.raises(BadQuery):
                parse_query([("device", refused)])
    base = {"case": "C-1", "enterprise": "E", "device": LONGEST, "site": LONGEST,
            "polygon": [(0, 0), (0, 1), (1, 1)]}
    Inspection.model_validate(base)
    with pytest.raises(ValidationError):
        Inspection.model_validate({**base, "device": TOO_LONG})


def test_the_compiled_patterns_take_the_whole_string() -> None:
    for rx in (vocab.ID_RE, vocab.CASE_RE, vocab.KIND_RE, vocab.EVENT_TYPE_RE, vocab.SHA256_RE):
        assert rx.match("a" * 64 + "\n") is None  # Python's "$" would let a trailing newline through


def test_the_console_serves_the_vocabulary_and_its_pages_load_it() -> None:
    app = FastAPI()
    app.include_router(pages.router)
    body = TestClient(app).get("/api/vocab").json()
    assert body["record_kinds"] == list(vocab.RECORD_KINDS)
    assert body["step_titles"]["power_of_attorney"] == "Power of attorney"
    assert body["patterns"]["id"] == vocab.ID_PATTERN and "frozen" in body["event_types"]
    static = Path(pages.STATIC)
    assert "vocab()" in (static / "search.js").read_text() and "vocab()" in (static / "inspection.js").read_text()

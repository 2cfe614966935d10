"""docs/asyncapi.yaml and agent/wire/topics.py must name the same topics (and the code must use them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.wire.topics import CHANNELS, DeviceTopics, documented_addresses, officer_reply

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def _doc_addresses() -> list[str]:
    text = DOC.read_text()
    assert text.startswith("asyncapi: 3."), "docs/asyncapi.yaml must be an AsyncAPI 3 document"
    return re.findall(r"^\s+address:\s*(\S+)\s*$", text, flags=re.MULTILINE)


def test_documented_topics_match_the_code() -> None:
    assert sorted(_doc_addresses()) == sorted(documented_addresses())


def test_code_builds_the_documented_topics() -> None:
    t = DeviceTopics("site-1", "dev-1")
    built = {t.availability, t.status, t.record, t.media, t.alert, t.receipt, t.cmd, t.live("s1"), t.talk("s1"),
             officer_reply("officer-alice", "cam-1/r1")}
    patterns = [re.compile("^" + re.sub(r"\\\{[a-z]+\\\}", "[^/]+", re.escape(a)) + "$")
                for a in _doc_addresses()]
    for topic in built:
        assert any(p.match(topic) for p in patterns), f"{topic} is not documented"
    assert len(CHANNELS) + 3 == len(patterns)  # + officers' talk, the officer reply and the fleet trust topic


def test_documented_qos_matches() -> None:
    text = DOC.read_text()
    assert "live/{session}" in text and "(QoS 0)" in text
    assert CHANNELS["live/{session}"] == 0
    assert all(q == 1 for name, q in CHANNELS.items() if name != "live/{session}")


def test_document_parses_and_references_resolve() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed: structural check skipped "
                               "(the addresses are still checked above)")
    doc = yaml.safe_load(DOC.read_text())
    assert sorted(c["address"] for c in doc["channels"].values()) == sorted(_doc_addresses())
    for name, channel in doc["channels"].items():
        for ref in channel["messages"].values():
            assert ref["$ref"].rsplit("/", 1)[1] in doc["components"]["messages"], name
    for op in doc["operations"].values():
        assert op["channel"]["$ref"].rsplit("/", 1)[1] in doc["channels"]

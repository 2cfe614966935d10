"""docs/configuration.md and `example-config --full` are generated from the pydantic models and stay current."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from agent.core.errors import ConfigError
from agent.device.config import AgentConfig, parse_config
from agent.device.config_docs import DOC_PATH, Key, Section, markdown, walk
from tests.support.helpers import REPO


def test_configuration_doc_is_current() -> None:
    assert (REPO / DOC_PATH).read_text(encoding="utf-8") == markdown(), (
        "docs/configuration.md is stale: run `python -m agent.device.config_docs`")


def test_every_key_and_section_is_described() -> None:
    items = list(walk())
    keys = [k for k in items if isinstance(k, Key)]
    assert len(keys) > 100
    assert [k.key for k in keys if not k.description] == []
    assert [s.path for s in items if isinstance(s, Section) and s.path and not s.doc] == []
    names = {k.key for k in keys}
    for key in ("capture.source", "gps.file", "capture.loop", "gps.loop", "video.analytics.geofence.polygon",
                "video.c2pa.tsa_url", "anchor.tsa.ca_file", "uplink.mqtt.tls.ca_file"):
        assert key in names, key
    assert "video.still_interval_s" not in names  # one still interval: capture.still_interval_s


def test_example_config_full_is_every_default() -> None:
    out = subprocess.run([sys.executable, "-m", "agent.device.cli", "example-config", "--full"], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True)
    assert parse_config(tomllib.loads(out.stdout), "full") == AgentConfig()
    for key in ("still_interval_s = 5.0", "[video.c2pa]", "# [uplink.mqtt.tls]", "[anchor.tsa]", "# source = unset"):
        assert key in out.stdout, key


def test_the_second_still_interval_is_refused_with_a_pointer() -> None:
    with pytest.raises(ConfigError, match=r"video\.still_interval_s is not a setting.*capture\.still_interval_s"):
        parse_config({"video": {"still_interval_s": 3}}, "agent.toml")
    with pytest.raises(ConfigError, match=r"capture\.fps"):
        parse_config({"video": {"fps": 25}}, "agent.toml")

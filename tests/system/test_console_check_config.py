"""``evidence-officer console --config FILE --check-config``: the console's settings, including the report TSA
(``[report] tsa_url``), are checked before the console starts: one line naming the key, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.customs.keys import init_officer
from tests.support.console_stack import ENV
from tests.support.helpers import REPO


def _check(tmp_path: Path, report: str) -> subprocess.CompletedProcess[str]:
    if not (tmp_path / "officer").exists():
        init_officer(tmp_path / "officer", "officer-alice")
    cfg = tmp_path / "console.toml"
    cfg.write_text(f'[broker]\nurl = "mqtt://127.0.0.1:1883"\n[officer]\nkeys = "{tmp_path / "officer"}"\n{report}')
    return subprocess.run([sys.executable, "-m", "agent.customs.cli", "console", "--config", str(cfg),
                           "--check-config"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)


def test_a_report_tsa_is_named_by_check_config(tmp_path: Path) -> None:
    res = _check(tmp_path, '[report]\ntsa_url = "http://tsa.customs.example/tsr"\n')
    assert res.returncode == 0, res.stderr
    assert "report: TSA http://tsa.customs.example/tsr time-stamps the officer's PDF signature" in res.stdout
    res = _check(tmp_path, "")
    assert res.returncode == 0 and "no [report] tsa_url" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize(("report", "words"), [
    ('[report]\ntsa_url = "ftp://tsa.example/"\n', "report.tsa_url"),
    ('[report]\ntsa_url = "not a url"\n', "report.tsa_url"),
    ('[report]\ntsa = "http://tsa.example/"\n', "report.tsa"),
])
def test_a_bad_report_setting_is_one_line_and_exit_2(tmp_path: Path, report: str, words: str) -> None:
    res = _check(tmp_path, report)
    assert res.returncode == 2, res.stdout + res.stderr
    assert words in res.stderr and "console.toml" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr

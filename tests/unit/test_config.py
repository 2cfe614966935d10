from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.errors import ConfigError
from agent.device.config import example_toml, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "agent.toml"
    p.write_text(text)
    return p


def test_example_config_is_valid_and_paths_resolve(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, example_toml()))
    assert cfg.device.id == "cam-0001" and cfg.vault.path == Path("/var/lib/evidence-agent/vault")
    rel = load_config(write(tmp_path, '[vault]\npath = "v"\n'))
    assert rel.vault.path == tmp_path.resolve() / "v"


def test_defaults_need_no_broker(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg.capture.backend == "synthetic" and cfg.gps.source == "simulated"


@pytest.mark.parametrize("text,needle", [
    ("[device]\nidd = 'x'\n", "device.idd: unknown key"),
    ("[capture]\nfps = -1\n", "capture.fps:"),
    ("[camera]\n", "camera: unknown key"),
    ("[device]\nid = 'has space'\n", "device.id:"),
    ("[vault]\nquota_mb = 'lots'\n", "vault.quota_mb:"),
    ("[gps]\nsource = 'file'\n", "gps"),
    ("[device\n", "not valid TOML"),
])
def test_errors_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert str(p) in str(err.value) and needle in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")

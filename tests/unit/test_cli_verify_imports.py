"""`evidence-agent verify` builds only its own command line and leaves the device runtime unloaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.device.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def test_the_full_parser_still_lists_every_command() -> None:
    full = build_parser().format_help()
    assert "provision" in full and "selftest" in full and "verify" in full
    assert build_parser(only="verify").parse_args(["verify", "x", "--json"]).json


def test_verify_does_not_load_the_device_runtime(tmp_path: Path) -> None:
    code = ("import sys; from agent.device.cli import main; rc = main(['verify', sys.argv[1], '--json']); "
            "print(sorted(m for m in ('agent.device.config', 'agent.capture.settings', 'agent.device.runner') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing")], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_verify_without_anchor_options_leaves_sigstore_and_tsa_unloaded(tmp_path: Path) -> None:
    """The Sigstore models (~0.1 s) load for a Rekor receipt or option only, rfc3161-client for a TSA token only."""
    vault = tmp_path / "vault"
    (vault / "items" / "000000").mkdir(parents=True)
    code = ("import sys; from agent.device.cli import main; rc = main(['verify', sys.argv[1], '--json']); "
            "print(sorted(m for m in ('sigstore_models', 'agent.anchor.rekor', 'rfc3161_client', 'agent.signing.exif') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(vault)], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr

"""`evidence-agent provision` under a careless umask (000): nothing it creates is writable by others.

Before: folders were made with ``mkdir`` and the process umask, so under ``umask 000`` the state folder (keys,
vault, outbox) and the configuration folder were world-writable: any local user could swap the config or
plant files beside the key. Now folders are 0755 (configuration, officer certificates) or 0700 (state, keys)
and files keep explicit modes whatever the umask. Also: provision writes an explicit ``permissions.json``
(commands fail closed) and ``--officer CERT`` installs a trusted officer with every command.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from agent.customs.keys import init_officer
from agent.signing import keys
from tests.support.helpers import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _provision(root: Path, ca: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.device.cli", "provision", "--site", "site-1",
                           "--broker", "mqtts://broker.example:8883", "--ca", str(ca), "--device-id", "cam-7",
                           "--root", str(root), "--dev-ca", "--no-enable", *extra],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120, umask=0)


def _modes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def test_provision_under_umask_000_leaves_nothing_world_writable(tmp_path: Path) -> None:
    _key, ca = keys.make_ca("Customs Broker CA", "Customs")
    (tmp_path / "broker-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    alice = init_officer(tmp_path / "alice", "officer-alice")
    root = tmp_path / "root"
    res = _provision(root, tmp_path / "broker-ca.pem", "--officer", str(tmp_path / "alice" / "officer.pem"))
    assert res.returncode == 0, res.stdout + res.stderr
    modes = _modes(root)
    writable = {p: oct(m) for p, m in modes.items() if m & 0o002}
    assert not writable, f"world-writable after provision under umask 000: {writable}"
    group_writable = {p: oct(m) for p, m in modes.items() if m & 0o020}
    assert not group_writable, group_writable
    assert modes["var/lib/evidence-agent"] == 0o700
    assert modes["var/lib/evidence-agent/keys"] == 0o700
    assert modes["var/lib/evidence-agent/keys/device.key"] == 0o600
    assert modes["etc/evidence-agent"] == 0o755
    assert modes["etc/evidence-agent/officers"] == 0o755
    assert modes["etc/evidence-agent/agent.toml"] == 0o640
    # commands fail closed, so provisioning writes the grants explicitly
    officers = root / "etc/evidence-agent/officers"
    assert json.loads((officers / "permissions.json").read_text()) == {"officer-alice": ["*"]}
    assert (officers / "officer-alice.pem").read_bytes() == alice.cert.public_bytes(serialization.Encoding.PEM)
    assert "officer-alice" in res.stdout

    # a second run changes nothing, and repairs a folder someone loosened
    os.chmod(root / "var/lib/evidence-agent", 0o777)
    again = _provision(root, tmp_path / "broker-ca.pem", "--officer", str(tmp_path / "alice" / "officer.pem"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert stat.S_IMODE((root / "var/lib/evidence-agent").stat().st_mode) == 0o700
    assert "mode 0777 -> 0700" in again.stdout


def test_provision_without_officers_writes_a_permissions_file_that_grants_nothing(tmp_path: Path) -> None:
    _key, ca = keys.make_ca("Customs Broker CA", "Customs")
    (tmp_path / "broker-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    root = tmp_path / "root"
    res = _provision(root, tmp_path / "broker-ca.pem")
    assert res.returncode == 0, res.stdout + res.stderr
    perms = root / "etc/evidence-agent/officers/permissions.json"
    assert json.loads(perms.read_text()) == {}
    assert "--officer" in res.stdout  # the line says how to add one

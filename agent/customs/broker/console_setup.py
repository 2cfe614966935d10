"""``broker-setup --console OFFICER``: a complete console folder for one officer account, ready to run.

``<out>/console-<officer>/`` holds ``console.toml`` and every file it names, under the names docs/console.md
uses: ``broker-ca.pem`` (the fleet CA, which signed the broker's certificate), ``officer-tls.crt`` /
``officer-tls.key`` (the account's TLS client identity, CN = officer id), ``device-ca.pem`` (devices'
certificates must chain to it), ``officer-keys/`` (the signing key folder: the same identity, so the
officer who connects is the one who signs) and ``console-data/`` (inspection sessions; the
``evidence-officer inspection`` default when run in this folder). Existing files are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.core.fsutil import atomic_write
from agent.customs.keys import CERT_FILE, KEY_FILE

CONSOLE_TOML = """\
# Written by `evidence-officer broker-setup --console {officer}`; relative paths are relative to this file.
# Run: evidence-officer console --config {path}
[broker]
url = "{url}"
ca_file = "broker-ca.pem"
cert_file = "officer-tls.crt"
key_file = "officer-tls.key"

[officer]
keys = "officer-keys"
device_ca = "device-ca.pem"

[listen]
host = "127.0.0.1"
port = 8470

[inspections]
data = "console-data"
"""


def write_console(out: Path, officer: str, url: str) -> list[str]:
    """The console folder of ``officer`` (an account broker-setup issued in ``clients/``)."""
    folder = out / f"console-{officer}"
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o700)
    done: list[str] = []
    cert = (out / "clients" / f"{officer}.pem").read_bytes()
    key = (out / "clients" / f"{officer}.key").read_bytes()
    ca = (out / "ca" / "ca.pem").read_bytes()
    files = {"broker-ca.pem": (ca, 0o644), "device-ca.pem": (ca, 0o644), "officer-tls.crt": (cert, 0o644),
             "officer-tls.key": (key, 0o600), f"officer-keys/{CERT_FILE}": (cert, 0o644),
             f"officer-keys/{KEY_FILE}": (key, 0o600)}
    (folder / "officer-keys").mkdir(exist_ok=True)
    os.chmod(folder / "officer-keys", 0o700)
    (folder / "console-data").mkdir(exist_ok=True)
    for name, (data, mode) in files.items():
        if not (folder / name).exists():
            atomic_write(folder / name, data, mode=mode)
    toml = folder / "console.toml"
    if not toml.exists():
        atomic_write(toml, CONSOLE_TOML.format(officer=officer, path=toml, url=url).encode(), mode=0o600)
        done.append(f"console for {officer}: {toml} (run: evidence-officer console --config {toml})")
    return done

"""A customs CA run as an administrator would (``evidence-officer ca ...``) over a ``broker-setup`` broker.

The broker's fleet CA folder (``<root>/ca``) is the customs CA: ``ca`` operates on it in place, signs device
CSRs made by ``evidence-agent keys init --csr`` into ``<root>/devices/<id>/`` (the layout the Fleet helper
connects with) and publishes ``<root>/ca/crl.pem``, which broker-setup ``--crl`` names in mosquitto.conf.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.fleet import INGESTS, OFFICERS, Fleet, agent_cli, officer_cli

SITE = "site-1"


def ca(fleet: Fleet, *args: str) -> str:
    """One ``evidence-officer ca`` command on the fleet's CA folder; its stdout (it must succeed)."""
    res = officer_cli("ca", *args, "--dir", str(fleet.root / "ca"))
    assert res.returncode == 0, f"ca {args}: {res.stdout}{res.stderr}"
    assert "Traceback" not in res.stderr
    return res.stdout


def enroll(fleet: Fleet, device: str, site: str = SITE) -> Path:
    """Device key + CSR on the device, signed by ``ca sign-csr``, installed with ``keys install-cert``."""
    keys = fleet.key_dir(device)
    res = agent_cli("keys", "init", "--key-dir", str(keys), "--device-id", device, "--csr")
    assert res.returncode == 0, res.stderr
    cert = keys.parent / f"{device}-issued.pem"
    ca(fleet, "sign-csr", str(keys / "device.csr"), "--device", device, "--site", site, "--out", str(cert))
    res = agent_cli("keys", "install-cert", "--key-dir", str(keys), str(cert), str(fleet.ca))
    assert res.returncode == 0, res.stderr
    return keys


def crl_path(fleet: Fleet) -> Path:
    return fleet.root / "ca" / "crl.pem"


def broker_setup_with_crl(fleet: Fleet) -> None:
    """Re-run broker-setup (keeps the CA) naming the CRL: mosquitto.conf gets its ``crlfile`` line."""
    args = ["broker-setup", str(fleet.root), "--port", str(fleet.port), "--bind", "127.0.0.1", "--org",
            "Test Customs", "--crl", str(crl_path(fleet))]
    enrolled = sorted(d.name for d in (fleet.root / "devices").iterdir() if (d / "device.pem").exists())
    registry = fleet.root / "enrolled.toml"  # devices that made their own key register through --registry
    registry.write_text("[devices]\n" + "".join(f'"{d}" = "{SITE}"\n' for d in enrolled))
    args += ["--registry", str(registry)]
    for o in OFFICERS:
        args += ["--officer", o]
    for i in INGESTS:
        args += ["--ingest", i]
    res = officer_cli(*args)
    assert res.returncode == 0, res.stderr


def next_second() -> None:
    """Wait until the wall clock enters a new second (a CRL's revocation time has 1 s resolution)."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.02)

"""A whole device on one machine for fault tests: agent child process, Mosquitto, TSA, ledger, ingest.

The agent runs exactly as the systemd service does (``python -m agent.device.cli run --config FILE``), so a
SIGKILL hits the real process; the officer's ingest also runs as its CLI. Used by the CI tests in
this package and by ``scripts/crash_loop.py`` (the manual 100+ kill run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.hostsetup.provision import to_toml
from agent.signing.keys import init_identity
from tests.support.broker import Mosquitto
from tests.support.helpers import wait_until  # noqa: F401  (re-exported for the fault tests)
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
DEVICE = "cam-fault"
SITE = "site-fault"


@dataclass
class Rig:
    """Device files under ``root``; ``broker``/``tsa``/``ledger`` are optional real services."""

    root: Path
    broker: Mosquitto | None = None
    tsa: LocalTsa | None = None
    ledger: LocalLedger | None = None
    still_interval_s: float = 0.3
    batch_interval_s: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # added to the agent's environment (e.g. NOTIFY_SOCKET)
    proc: subprocess.Popen[bytes] | None = None
    ingest_proc: subprocess.Popen[str] | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.keys = self.root / "keys"
        self.vault = self.root / "vault"
        self.received = self.root / "received"
        self.config = self.root / "agent.toml"
        self.log = self.root / "agent.log"
        self.ingest_log = self.root / "ingest.log"
        if not (self.keys / "device.key").exists():
            init_identity(self.keys, DEVICE, "Fault Test Ltd")
        self.write_config()

    def settings(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "device": {"id": DEVICE, "site_id": SITE},
            "identity": {"key_dir": str(self.keys)},
            "vault": {"path": str(self.vault)},
            "capture": {"backend": "synthetic", "width": 160, "height": 120, "fps": 10,
                        "still_interval_s": self.still_interval_s, "jpeg_quality": 80},
            "gps": {"source": "simulated"},
            "time": {"chrony": False},
            "video": {"segment_seconds": 2.0, "fragment_seconds": 0.5, "encoder": "libx264", "preset": "ultrafast",
                      "c2pa": {"enabled": False}},
            "gpio": {},
        }
        anchor: dict[str, Any] = {"enabled": self.tsa is not None or self.ledger is not None,
                                  "batch_interval_s": self.batch_interval_s, "batch_max_records": 64,
                                  "backoff_initial_s": 0.5, "backoff_max_s": 2.0}
        if self.tsa is not None:
            anchor["tsa"] = {"url": self.tsa.url, "ca_file": str(self.tsa.ca_file), "timeout_s": 5.0}
        if self.ledger is not None:
            anchor["ledger"] = {"url": self.ledger.url, "verifier_key": self.ledger.verifier_key, "timeout_s": 5.0}
        cfg["anchor"] = anchor
        if self.broker is not None:
            mqtt: dict[str, Any] = {"broker": self.broker.url, "client_id": DEVICE, "reconnect_min_s": 0.5,
                                    "reconnect_max_s": 2.0, "keepalive_s": 5}
            if self.broker.tls:
                assert self.broker.pki is not None
                c = self.broker.pki.client(DEVICE)
                mqtt["tls"] = {"ca_file": str(c.ca), "cert_file": str(c.cert), "key_file": str(c.key)}
            cfg["uplink"] = {"enabled": True, "mqtt": mqtt, "outbox_path": str(self.root / "outbox.sqlite"),
                             "chunk_bytes": 16 * 1024, "retry_after_s": 0.5, "status_interval_s": 5.0,
                             "commands": {"trust_dir": str(self.root / "officers")}}
        for section, values in self.extra.items():
            cfg.setdefault(section, {}).update(values)
        return cfg

    def write_config(self) -> None:
        (self.root / "officers").mkdir(exist_ok=True)
        (self.root / "officers" / "permissions.json").write_text('{"*": ["*"]}')  # commands fail closed without it
        self.config.write_text(to_toml(self.settings()))

    # -- the agent as a child process ---------------------------------------------------------
    def start_agent(self) -> subprocess.Popen[bytes]:
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        with open(self.log, "ab") as logf:
            cmd = [sys.executable, "-m", "agent.device.cli", "run", "--config", str(self.config)]
            self.proc = subprocess.Popen(cmd, cwd=REPO, env={**ENV, **self.env}, stdout=logf,
                                         stderr=subprocess.STDOUT)
        return self.proc

    def kill_agent(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop_agent(self, timeout: float = 60) -> int:
        """SIGTERM: the agent's clean stop (final checkpoint, outbox closed)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    # -- the officer's ingest as its CLI -------------------------------------------------------
    def start_ingest(self) -> None:
        assert self.broker is not None
        args = [sys.executable, "-m", "agent.customs.cli", "ingest", "--broker", self.broker.url,
                "--out", str(self.received), "--client-id", "ingest-1", "--report", str(self.root / "ingest.json")]
        if self.broker.tls:
            assert self.broker.pki is not None
            c = self.broker.pki.client("ingest-1")
            args += ["--cafile", str(c.ca), "--cert", str(c.cert), "--key", str(c.key)]
        with open(self.ingest_log, "a") as logf:  # a file, not a pipe: a full pipe would block its logging
            self.ingest_proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=logf,
                                                text=True)

    def stop_ingest(self) -> dict[str, Any]:
        """SIGTERM the ingest; returns its JSON report for this device."""
        assert self.ingest_proc is not None
        self.ingest_proc.send_signal(signal.SIGTERM)
        self.ingest_proc.wait(timeout=60)
        rep = json.loads((self.root / "ingest.json").read_text())
        dev: dict[str, Any] = rep["devices"].get(DEVICE, {})
        dev["stderr_tail"] = self.ingest_log.read_text(errors="replace")[-2000:]
        return dev

    def close(self) -> None:
        for p in (self.proc, self.ingest_proc):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)

    # -- reading the vault from outside --------------------------------------------------------
    def sealed(self) -> list[dict[str, Any]]:
        """Every record line on disk, by sequence (read-only: the agent may be running)."""
        out = []
        for rec in sorted((self.vault / "items").glob("*/*.rec")):
            out.append(json.loads(rec.read_bytes().split(b"\n", 1)[0]))
        return out

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent.device.cli", *args], cwd=REPO, env=ENV, capture_output=True,
                              text=True, timeout=timeout)

    def verify_json(self, path: Path, anchors: bool = True) -> dict[str, Any]:
        args = ["verify", str(path), "--json"]
        if anchors and self.tsa is not None:
            args += ["--tsa-ca", str(self.tsa.ca_file)]
        if anchors and self.ledger is not None:
            args += ["--ledger-key", self.ledger.verifier_key]
        res = self.cli(*args)
        try:
            doc: dict[str, Any] = json.loads(res.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"verify printed no JSON (rc {res.returncode}): {res.stdout}{res.stderr}") from None
        return doc


def seqs_of(records: Sequence[dict[str, Any]], kind: str | None = None) -> list[int]:
    return [int(r["seq"]) for r in records if kind is None or r["kind"] == kind]


def received_seqs(rig: Rig) -> set[int]:
    """Records the officer's ingest has stored (it writes a sidecar only after checking its signature)."""
    d = rig.received / DEVICE / "items"
    return {int(p.name[:12]) for p in d.glob("*/*.rec")} if d.exists() else set()


def received_complete(rig: Rig, upto: int) -> bool:
    """Every record up to ``upto`` and its media file are at the ingest."""
    have = received_seqs(rig)
    if not set(range(upto + 1)) <= have:
        return False
    base = rig.received / DEVICE / "items"
    for r in rig.sealed()[: upto + 1]:
        media = r.get("media")
        if media and not (base / f"{r['seq'] // 10_000:06d}" / media["name"]).exists():
            return False
    return True

"""`evidence-agent run --config` with [anchor.rekor] and [anchor.tsa] on Sigstore's servers, then `verify` offline
with --rekor-key and --tsa-ca: every receipt checked. Config mistakes in [anchor.rekor] name the key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from agent.anchor.trustroot import make_trusted_root
from tests.support.helpers import wait_for
from tests.support.sigstore_servers import RekorV2, SigstoreTsa, require_servers

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.device.cli", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _config(d: Path, rekor_section: str, tsa_section: str = "") -> Path:
    cfg = d / "agent.toml"
    cfg.write_text(f"""
[device]
id = "cam-9"
site_id = "site-1"
[identity]
key_dir = "{d}/keys"
[vault]
path = "{d}/vault"
[capture]
backend = "synthetic"
width = 320
height = 240
still_interval_s = 1
[gps]
source = "simulated"
[video]
enabled = false
[anchor]
batch_interval_s = 2
{tsa_section}
{rekor_section}
""")
    return cfg


def test_run_anchors_in_rekor_and_verify_checks_every_receipt(tmp_path: Path) -> None:
    require_servers()
    rekor, tsa = RekorV2(), SigstoreTsa()
    try:
        cfg = _config(tmp_path, f'[anchor.rekor]\nurl = "{rekor.url}"\npublic_key = "{rekor.public_key_file}"\n'
                                f'origin = "{rekor.origin}"\n',
                      f'[anchor.tsa]\nurl = "{tsa.url}"\nca_file = "{tsa.ca_file}"\n')
        assert _cli("keys", "init", "--key-dir", str(tmp_path / "keys"), "--device-id", "cam-9").returncode == 0
        r = _cli("run", "--config", str(cfg), "--seconds", "7")
        assert r.returncode == 0, r.stdout + r.stderr
        vault = tmp_path / "vault"
        notes = sorted((vault / "log" / "checkpoints").glob("*.note"))
        rk = sorted((vault / "log" / "anchors").glob("*-rekor.json"))
        assert len(notes) >= 2 and len(rk) >= 2
        v = _cli("verify", str(vault), "--json", "--allow-untrusted", "--tsa-ca", str(tsa.ca_file),
                 "--rekor-key", f"{rekor.origin}={rekor.public_key_file}")
        assert v.returncode == 0, v.stdout + v.stderr
        rep = json.loads(v.stdout)
        anchors = rep["anchoring"]["anchors"]
        assert {a["anchor"] for a in anchors} == {"tsa", "rekor"}
        assert all(a["log_signature_checked"] for a in anchors if a["anchor"] == "rekor")
        assert not [w for w in rep["warnings"] if "not checked" in w["warning"]], rep["warnings"]
        # one Sigstore TrustedRoot file instead of --rekor-key/--tsa-ca (what customs hands to a court)
        root = tmp_path / "trusted_root.json"
        chain = x509.load_pem_x509_certificates(tsa.chain_file.read_bytes())
        root.write_text(json.dumps(make_trusted_root(f"https://{rekor.origin}", rekor.public_key_file.read_bytes(),
                                                     chain)))
        v3 = _cli("verify", str(vault), "--json", "--allow-untrusted", "--trust-root", str(root))
        assert v3.returncode == 0, v3.stdout + v3.stderr
        rep3 = json.loads(v3.stdout)
        assert not [w for w in rep3["warnings"] if "not checked" in w["warning"]], rep3["warnings"]
        assert {a["anchor"] for a in rep3["anchoring"]["anchors"]} == {"tsa", "rekor"}
        sg_models = pytest.importorskip("sigstore.models")  # sigstore-python takes the same file and its log key
        sg_trust = pytest.importorskip("sigstore._internal.trust")
        keyring = sg_models.TrustedRoot.from_file(str(root)).rekor_keyring(sg_trust.KeyringPurpose.VERIFY)
        assert len(keyring._keyring) == 1
        # without the log's key: still exit 0 for intact evidence, but verify names what it could not check
        v2 = _cli("verify", str(vault), "--json", "--allow-untrusted", "--tsa-ca", str(tsa.ca_file))
        assert any("Rekor checkpoint" in w["warning"] and "not checked" in w["warning"]
                   for w in json.loads(v2.stdout)["warnings"])
    finally:
        rekor.close()
        tsa.close()


def test_rekor_config_mistakes_name_the_key(tmp_path: Path) -> None:
    bad_key = tmp_path / "not-a-key.pem"
    bad_key.write_text("hello\n")
    cases = {
        '[anchor.rekor]\nurl = "http://127.0.0.1:1"\norigin = "log.example"\n': "anchor.rekor",
        f'[anchor.rekor]\nurl = "http://127.0.0.1:1"\norigin = "log.example"\npublic_key = "{bad_key}"\n':
            "public_key",
        f'[anchor.rekor]\nurl = "http://127.0.0.1:1"\norigin = "log.example"\npublic_key = "{tmp_path}/none.pem"\n':
            "public_key",
        '[anchor.rekor]\nurl = "not a url"\n': "anchor.rekor.url",
    }
    for section, key in cases.items():
        r = _cli("check-config", str(_config(tmp_path, section)))
        assert r.returncode != 0
        assert key in r.stderr + r.stdout and "Traceback" not in r.stderr, r.stderr
    r = _cli("verify", str(tmp_path), "--rekor-key", "no-equals-sign")
    assert r.returncode != 0 and "--rekor-key" in r.stderr and "Traceback" not in r.stderr, r.stderr
    (tmp_path / "root.json").write_text('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}')
    r = _cli("verify", str(tmp_path), "--trust-root", str(tmp_path / "root.json"))
    assert r.returncode != 0 and "--trust-root" in r.stderr and "tlogs" in r.stderr and "Traceback" not in r.stderr


def test_run_survives_rekor_restart_mid_run(tmp_path: Path) -> None:
    """Rekor goes down while `evidence-agent run` is anchoring and comes back: the agent retries, and at the
    end every record up to the final checkpoint is covered by a Rekor receipt that verifies."""
    require_servers()
    rekor = RekorV2()
    try:
        cfg = _config(tmp_path, f'[anchor.rekor]\nurl = "{rekor.url}"\npublic_key = "{rekor.public_key_file}"\n'
                                f'origin = "{rekor.origin}"\ntiles_url = "{rekor.tiles_url}"\n')
        text = cfg.read_text().replace("batch_interval_s = 2\n", "batch_interval_s = 1\nbackoff_initial_s = 0.2\n"
                                       "backoff_max_s = 1\n")
        cfg.write_text(text)
        assert _cli("keys", "init", "--key-dir", str(tmp_path / "keys"), "--device-id", "cam-9").returncode == 0
        anchors = tmp_path / "vault" / "log" / "anchors"
        notes = tmp_path / "vault" / "log" / "checkpoints"

        def newest_receipt() -> int:
            return max((int(p.name.split("-")[0]) for p in anchors.glob("*-rekor.json")), default=0)

        def newest_note() -> int:
            return max(int(p.stem) for p in notes.glob("*.note"))

        def run_until(step: Callable[[subprocess.Popen[str]], None], log_name: str) -> str:
            """Run the agent as systemd does, do ``step`` while it runs, stop it with SIGTERM; its log."""
            log = (tmp_path / log_name).open("w")  # a file, not a pipe nobody reads while it runs
            proc = subprocess.Popen([sys.executable, "-m", "agent.device.cli", "run", "--config", str(cfg)],
                                    cwd=REPO, env=ENV, stdout=log, stderr=subprocess.STDOUT, text=True)
            log.close()
            try:
                step(proc)
                proc.send_signal(signal.SIGTERM)
                proc.wait(120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            out = (tmp_path / log_name).read_text()
            assert proc.returncode == 0, out
            return out

        def outage(proc: subprocess.Popen[str]) -> None:
            wait_for(newest_receipt, timeout=60)
            rekor.stop()
            down_at = newest_note()
            wait_for(lambda: len([p for p in notes.glob("*.note") if int(p.stem) > down_at]) >= 2,
                     timeout=60)  # checkpoints pile up while the log is down
            rekor.start()
            wait_for(lambda: newest_receipt() > down_at, timeout=60)

        out = run_until(outage, "agent.log")
        assert "anchor rekor failed" in out
        final = newest_note()
        if newest_receipt() < final:
            # The stop waits a bounded time for the final checkpoint (inside systemd's stop timeout); on a loaded
            # machine Rekor may answer later than that, and then the next start anchors it, as documented.
            run_until(lambda proc: wait_for(lambda: newest_receipt() >= final and newest_note() > final, timeout=120),
                      "agent-2.log")
        assert newest_receipt() >= final  # nothing the first run sealed is left without a Rekor receipt
        v = _cli("verify", str(tmp_path / "vault"), "--json", "--allow-untrusted",
                 "--rekor-key", f"{rekor.origin}={rekor.public_key_file}")
        assert v.returncode == 0, v.stdout + v.stderr
    finally:
        rekor.close()

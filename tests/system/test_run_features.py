"""Every feature of the config through the real `evidence-agent run`, with the real officer tools.

TLS Mosquitto with ACLs, the ingest, the test TSA (`openssl ts`) and ledger; the officer sends signed
commands and watches live while the service records. Checked end to end: stills (C2PA), segments,
checkpoints, TSA and ledger receipts, the officer's snapshot and mark, the live session's record, all of
it delivered, verified at both ends, and every record in the Merkle log after the clean stop.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from agent.customs.keys import init_officer
from tests.support.field_site import ENV, FieldSite, agent_cli, cli, records
from tests.support.helpers import REPO, wait_until
from tests.support.ledger_server import LocalLedger
from tests.support.tsa_server import LocalTsa


def officer(site: FieldSite, keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert site.broker.pki is not None
    tls = site.broker.pki.client("officer-alice")
    return cli("agent.customs.cli", *args, "--broker", site.broker.url, "--keys", str(keys), "--site", site.site_id,
               "--cafile", str(tls.ca), "--cert", str(tls.cert), "--key", str(tls.key), timeout=60)


def test_every_feature_through_run(site: FieldSite, tmp_path: Path) -> None:
    tsa, ledger = LocalTsa(tmp_path / "tsa"), LocalLedger()
    alice = tmp_path / "alice"
    key = init_officer(alice, "officer-alice")
    dev = tmp_path / "dev"
    config = site.device_config(
        dev, "cam-feat",
        capture={"still_interval_s": 1.5},
        anchor={"tsa": {"url": tsa.url, "ca_file": str(tsa.ca_file)},
                "ledger": {"url": ledger.url, "verifier_key": ledger.verifier_key}})
    (dev / "officers" / "officer-alice.pem").write_bytes(key.cert.public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "received"
    ingest = site.start_ingest(out, "--idle", "12", "--report", str(tmp_path / "report.json"))
    run = subprocess.Popen([sys.executable, "-m", "agent.device.cli", "run", "--config", str(config),
                            "--seconds", "22", "--drain-timeout", "40"],
                           cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        vault = dev / "vault"
        assert wait_until(lambda: any(vault.rglob("*.segment.rec")), timeout=30)
        snap = officer(site, alice, "cmd", "cam-feat", "snapshot", "--device-ca", str(site.customs_ca_file))
        assert snap.returncode == 0, snap.stdout + snap.stderr
        mark = officer(site, alice, "cmd", "cam-feat", "mark", "--note", "seal 4711 intact",
                       "--device-ca", str(site.customs_ca_file))
        assert mark.returncode == 0, mark.stdout + mark.stderr
        live = officer(site, alice, "live", "cam-feat", "--seconds", "3", "--out", str(tmp_path / "live"))
        assert live.returncode == 0, live.stdout + live.stderr
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stdout + stderr
        ingest.communicate(timeout=90)
    finally:
        run.kill()
        ingest.kill()
        tsa.close()
        ledger.close()
    assert "Traceback" not in stderr, stderr
    assert "uplink: all delivered" in stdout and "alarms: none" in stdout, stdout
    recs = records(vault)
    kinds = Counter(r["kind"] for r in recs)
    assert kinds["still"] >= 3 and kinds["segment"] >= 3 and kinds["checkpoint"] >= 2, kinds
    assert kinds["live"] >= 1 and kinds["mark"] == 1, kinds
    anchors = {r["extra"].get("anchor") for r in recs if r["kind"] == "receipt"}
    assert len(anchors) == 2, anchors  # TSA and ledger
    stills = [r for r in recs if r["kind"] == "still"]
    assert any(r["extra"].get("reason") == "officer" for r in stills)
    assert all("manifest" in (r["extra"].get("c2pa") or {}) for r in stills), "C2PA embedded in every still"
    mark_rec = next(r for r in recs if r["kind"] == "mark")
    assert "seal 4711 intact" in json.dumps(mark_rec["extra"])
    # every record of the clean stop is in the Merkle log
    assert (vault / "log" / "leaves.bin").stat().st_size // 32 == len(recs)
    check = agent_cli("verify", str(vault), "--json", "--ca", str(site.customs_ca_file), "--tsa-ca",
                      str(tsa.ca_file), "--ledger-key", ledger.verifier_key)
    report = json.loads(check.stdout)
    assert check.returncode == 0 and report["ok"] and report["trusted_ca"], report["problems"]
    coverage = report["anchoring"]["coverage"]
    content = max(r["seq"] for r in recs if r["kind"] not in ("checkpoint", "receipt"))
    assert any(c.get("existed_no_later_than") and c["seq_to"] >= content for c in coverage), coverage
    received = json.loads((tmp_path / "report.json").read_text())["devices"]["cam-feat"]
    assert received["missing"] == [] and received["incomplete"] == [], received
    officer_side = json.loads(agent_cli("verify", str(out / "cam-feat"), "--json").stdout)
    assert officer_side["ok"] and officer_side["kinds"] == report["kinds"], officer_side["problems"]
    shutil.rmtree(tmp_path / "live", ignore_errors=True)

"""Undelivered and rejected evidence through the real `run`: said plainly, exit 1, and re-sent by `requeue`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.broker import acl_text, free_port
from tests.support.field_site import FieldSite, agent_cli, records


def test_unreachable_broker_leaves_evidence_undelivered_and_exits_1(site: FieldSite, tmp_path: Path) -> None:
    config = site.device_config(tmp_path / "dev", "cam-away",
                                uplink={"mqtt": {"broker": f"mqtts://127.0.0.1:{free_port()}"}})
    res = agent_cli("run", "--config", str(config), "--seconds", "3", "--drain-timeout", "3", timeout=90)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "uplink: NOT all delivered:" in res.stdout and "pending" in res.stdout, res.stdout
    assert "undelivered:" in res.stdout and "connection refused by 127.0.0.1" in res.stdout, res.stdout
    assert "OutboxStats(" not in res.stdout and "Traceback" not in res.stderr


def test_rejected_items_are_reported_kept_and_requeued(site: FieldSite, tmp_path: Path) -> None:
    acl = site.broker.dir / "acl"
    good = acl.read_text()
    acl.write_text(acl_text(site.broker.officers, site.broker.ingests).replace("pattern write evidence/+/%u/#\n", ""))
    site.broker.restart()
    dev = tmp_path / "dev"
    config = site.device_config(dev, "cam-denied", video={"enabled": False}, anchor={"enabled": False})
    try:
        res = agent_cli("run", "--config", str(config), "--seconds", "3", "--drain-timeout", "10", timeout=90)
    finally:
        acl.write_text(good)
        site.broker.restart()
    assert res.returncode == 1, res.stdout + res.stderr
    assert "rejected by the broker" in res.stdout and "requeue" in res.stdout, res.stdout
    listed = agent_cli("requeue", "--config", str(config), "--list")
    assert listed.returncode == 0 and "Not authorized" in listed.stdout, listed.stdout + listed.stderr
    out = tmp_path / "received"
    ingest = site.start_ingest(out, "--idle", "8", "--report", str(tmp_path / "report.json"))
    try:
        requeued = agent_cli("requeue", "--config", str(config))
        assert requeued.returncode == 0 and "re-queued" in requeued.stdout, requeued.stdout + requeued.stderr
        again = agent_cli("run", "--config", str(config), "--seconds", "1", "--drain-timeout", "30", timeout=90)
        assert again.returncode == 0 and "uplink: all delivered" in again.stdout, again.stdout + again.stderr
        ingest.communicate(timeout=60)
    finally:
        ingest.kill()
    report = json.loads((tmp_path / "report.json").read_text())["devices"]["cam-denied"]
    assert report["missing"] == [] and report["incomplete"] == [], report
    assert len(records(out / "cam-denied")) == len(records(dev / "vault"))

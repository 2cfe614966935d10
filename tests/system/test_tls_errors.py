"""The same fault gets the same words in `run`, the ingest and `selftest`: a certificate the broker does not trust."""

from __future__ import annotations

from pathlib import Path

from agent.signing import keys
from tests.support.field_site import FieldSite, agent_cli, cli

REFUSED = "TLS handshake refused: "


def test_untrusted_certificate_is_named_the_same_everywhere(site: FieldSite, tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    keys.init_identity(dev / "keys", "cam-stranger", "Lab")  # issued by its own development CA
    config = site.device_config(dev, "cam-stranger", video={"enabled": False}, anchor={"enabled": False})
    run = agent_cli("run", "--config", str(config), "--seconds", "3", "--drain-timeout", "2", timeout=90)
    assert run.returncode == 1, run.stdout + run.stderr
    summary = next(line for line in run.stdout.splitlines() if line.startswith("undelivered:"))
    assert REFUSED in summary, run.stdout
    selftest = agent_cli("selftest", "--config", str(config), "--gps-wait", "0", "--broker-timeout", "4",
                         "--no-seal", timeout=90)
    broker_line = next(line for line in selftest.stdout.splitlines() if line.startswith("broker"))
    assert "FAIL" in broker_line and REFUSED in broker_line, selftest.stdout

    ing = tmp_path / "ingest-keys"
    keys.init_identity(ing, "ingest-1", "Lab")
    assert site.broker.pki is not None
    res = cli("agent.customs.cli", "ingest", "--broker", site.broker.url, "--out", str(tmp_path / "out"),
              "--cafile", str(site.broker.pki.ca), "--cert", str(ing / keys.CERT_FILE),
              "--key", str(ing / keys.KEY_FILE), "--seconds", "3", timeout=60)
    assert REFUSED in res.stderr, res.stderr
    reason = summary.split(REFUSED, 1)[1].split(" ")[0]  # e.g. TLSV1_ALERT_UNKNOWN_CA
    assert reason in broker_line and reason in res.stderr, (reason, broker_line, res.stderr)

"""What a technician gets wrong, caught before the service starts: check-config (ExecStartPre), selftest, run.

Each mistake is one line naming the file and what is wrong; check-config and run exit 2, selftest FAILs;
never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.field_site import FieldSite, agent_cli


def _expect_refused(config: Path, *words: str) -> None:
    check = agent_cli("check-config", str(config))
    assert check.returncode == 2, check.stdout + check.stderr
    run = agent_cli("run", "--config", str(config), "--seconds", "2", timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    selftest = agent_cli("selftest", "--config", str(config), "--gps-wait", "0", "--broker-timeout", "3",
                         "--no-seal", timeout=90)
    assert selftest.returncode == 1, selftest.stdout + selftest.stderr
    config_line = next(line for line in selftest.stdout.splitlines() if line.startswith("config"))
    for out in (check.stderr, run.stderr, config_line):
        assert "Traceback" not in out
        for word in words:
            assert word in out, (word, out)
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "FAIL" in config_line


def test_missing_tls_certificate_file(site: FieldSite, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "device.pem"
    config = site.device_config(tmp_path / "dev", "cam-files", uplink={"mqtt": {"tls": {"cert_file": str(missing)}}})
    _expect_refused(config, "uplink.mqtt.tls.cert_file", str(missing), "does not exist")


def test_certificate_for_another_device(site: FieldSite, tmp_path: Path) -> None:
    config = site.device_config(tmp_path / "dev", "cam-mine", cert_cn="cam-theirs")
    _expect_refused(config, "CN=cam-theirs", "'cam-mine'", "device.pem")


def test_certificate_without_the_c2pa_extended_key_usage(site: FieldSite, tmp_path: Path) -> None:
    site.issue(tmp_path / "dev" / "keys", "cam-eku", eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    config = site.device_config(tmp_path / "dev", "cam-eku")
    _expect_refused(config, "emailProtection", "device.pem")


def test_expired_certificate(site: FieldSite, tmp_path: Path) -> None:
    site.issue(tmp_path / "dev" / "keys", "cam-old", days=0)
    config = site.device_config(tmp_path / "dev", "cam-old")
    _expect_refused(config, "expired", "device.pem")


@pytest.mark.parametrize("name", ["device.key", "ca.pem"])
def test_missing_identity_file(site: FieldSite, tmp_path: Path, name: str) -> None:
    config = site.device_config(tmp_path / "dev", "cam-gone")
    (tmp_path / "dev" / "keys" / name).unlink()
    _expect_refused(config, str(tmp_path / "dev" / "keys" / name), "does not exist")


def test_a_good_config_passes_check_config(site: FieldSite, tmp_path: Path) -> None:
    config = site.device_config(tmp_path / "dev", "cam-good")
    res = agent_cli("check-config", str(config))
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr

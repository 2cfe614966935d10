"""install-system against a temporary root: applies, backs up, is idempotent, dry-run changes nothing."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.core.clock import ManualClock
from agent.hostsetup.install_system import BEGIN, END, apply, find_source, link_console_script, plan, register

REPO = Path(__file__).resolve().parents[2]
FW = REPO / "firmware_config"
PI_CONFIG = "# stock Raspberry Pi OS\ndtparam=audio=on\n[cm4]\notg_mode=1\n"
PI_CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "boot/firmware").mkdir(parents=True)
    (r / "boot/firmware/config.txt").write_text(PI_CONFIG)
    (r / "boot/firmware/cmdline.txt").write_text(PI_CMDLINE)
    (r / "etc/default").mkdir(parents=True)
    (r / "etc/default/gpsd").write_text('START_DAEMON="true"\nDEVICES=""\n')
    return r


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_first_run_installs_with_backups_second_run_changes_nothing(root: Path) -> None:
    items = plan(find_source())
    first = apply(root, items, clock=ManualClock())
    acts = {c.path: c.action for c in first}
    assert acts["boot/firmware/config.txt"] == "update"
    assert acts["etc/chrony/conf.d/evidence-gps.conf"] == "create"
    assert acts["etc/systemd/system/evidence-agent.service"] == "create"
    assert acts["etc/default/gpsd"] == "update"

    config = (root / "boot/firmware/config.txt").read_text()
    assert config.startswith(PI_CONFIG.rstrip("\n"))  # the owner's part is untouched
    block = config[config.index(BEGIN) :]
    assert block.rstrip().endswith(END)
    for line in (
        "[all]",
        "camera_auto_detect=1",
        "enable_uart=1",
        "dtoverlay=disable-bt",
        "dtoverlay=pps-gpio,gpiopin=18",
        "dtparam=watchdog=on",
    ):
        assert line in block.splitlines()
    cmdline = (root / "boot/firmware/cmdline.txt").read_text()
    assert "console=serial0" not in cmdline and "console=tty1" in cmdline and cmdline.endswith("rootwait\n")

    backups = sorted(str(p.relative_to(root)) for p in root.rglob("*.bak-*"))
    assert backups == [
        "boot/firmware/cmdline.txt.bak-20260921T141320Z",
        "boot/firmware/config.txt.bak-20260921T141320Z",
        "etc/default/gpsd.bak-20260921T141320Z",
    ]
    assert (root / "boot/firmware/config.txt.bak-20260921T141320Z").read_text() == PI_CONFIG
    assert (root / "etc/systemd/system/evidence-agent.service").read_bytes() == (
        REPO / "systemd/system/evidence-agent.service"
    ).read_bytes()

    before = _snapshot(root)
    second = apply(root, items, clock=ManualClock(wall=ManualClock().wall + 10**12))
    assert {c.action for c in second} == {"unchanged"}
    assert _snapshot(root) == before


def test_dry_run_changes_nothing(root: Path) -> None:
    before = _snapshot(root)
    changes = apply(root, plan(find_source()), dry_run=True, clock=ManualClock())
    assert any(c.action == "create" for c in changes)
    assert "would create" in changes[-1].line(dry_run=True)
    assert _snapshot(root) == before


def test_edited_block_is_restored_and_a_fresh_root_works(tmp_path: Path, root: Path) -> None:
    items = plan(find_source())
    apply(root, items, clock=ManualClock())
    cfg = root / "boot/firmware/config.txt"
    cfg.write_text(cfg.read_text().replace("dtparam=watchdog=on", "dtparam=watchdog=off") + "# mine\n")
    again = {c.path: c.action for c in apply(root, items, clock=ManualClock(wall=ManualClock().wall + 10**9))}
    assert again["boot/firmware/config.txt"] == "update"
    text = cfg.read_text()
    assert "dtparam=watchdog=on" in text and text.endswith("# mine\n") and text.count(BEGIN) == 1

    empty = tmp_path / "empty"
    empty.mkdir()
    acts = {c.path: c.action for c in apply(empty, items, clock=ManualClock())}
    assert acts["boot/firmware/cmdline.txt"] == "skip"  # not a Pi boot partition
    assert acts["boot/firmware/config.txt"] == "create"


def test_console_script_link(tmp_path: Path) -> None:
    target = tmp_path / "venv/bin/evidence-agent"
    assert link_console_script(tmp_path, target).action == "create"
    assert (tmp_path / "usr/bin/evidence-agent").readlink() == target
    assert link_console_script(tmp_path, target).action == "unchanged"


def test_cli_prints_changes_and_is_idempotent(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["install-system", "--root", str(root)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^created\s+etc/udev/rules.d/99-evidence.rules$", out, re.MULTILINE)
    assert "next: systemd-sysusers" in out
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "created" not in out and "updated" not in out and "changed 0 of" in out


def test_udev_rules_are_well_formed() -> None:
    pair = r'[A-Z_]+(\{[^}]+\})?(==|!=|\+=|=|:=)"[^"]*"'
    for line in (FW / "etc/udev/rules.d/99-evidence.rules").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(rf"{pair}(, {pair})*", line), line


@pytest.mark.skipif(shutil.which("chronyd") is None, reason="chronyd not installed (apt install chrony)")
def test_chrony_accepts_the_refclock_config() -> None:
    conf = FW / "etc/chrony/conf.d/evidence-gps.conf"
    out = subprocess.run(["chronyd", "-p", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "refclock PPS /dev/pps0 lock NMEA" in out.stdout

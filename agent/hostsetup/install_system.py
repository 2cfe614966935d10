"""``evidence-agent install-system``: put the Pi's firmware, time, GPS, udev and systemd files in place.

The source trees ``firmware_config/`` and ``systemd/`` are laid out as installed. Applying them is
idempotent: a file already right is left alone, a differing one is backed up to
``<name>.bak-<UTC timestamp>`` before it is replaced, and every change is printed. Two files are
edited, not replaced: ``config.txt`` gets one marked block (the rest is the owner's), and
``cmdline.txt`` loses only a serial console on the GPS UART.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.core.clock import Clock, SystemClock
from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.hostsetup.changes import Change

BEGIN = "# BEGIN evidence-agent (managed by `evidence-agent install-system`; do not edit inside)"
END = "# END evidence-agent"
Action = Literal["create", "update", "unchanged", "skip"]


@dataclass(frozen=True)
class Item:
    """One installed path: its wanted content computed from the current content (None = absent)."""

    dest: str  # relative to the root, e.g. "etc/chrony/conf.d/evidence-gps.conf"
    render: Callable[[str | None], str | None]  # None result = leave alone (skip)
    mode: int = 0o644
    note: str = ""


def find_source(explicit: Path | None = None) -> Path:
    """The directory holding firmware_config/ and systemd/ (a checkout or an installed share dir)."""
    candidates = [explicit] if explicit else []
    if os.environ.get("EVIDENCE_AGENT_SHARE"):
        candidates.append(Path(os.environ["EVIDENCE_AGENT_SHARE"]))
    candidates += [Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / "evidence-agent"]
    for c in candidates:
        if c is not None and (c / "firmware_config").is_dir() and (c / "systemd").is_dir():
            return c
    raise ConfigError(
        "cannot find firmware_config/ and systemd/ in "
        + ", ".join(str(c) for c in candidates if c)
        + "; pass --source CHECKOUT"
    )


def managed_block(fragment: str) -> Callable[[str | None], str]:
    """Replace (or append) the marked block in config.txt, keeping everything else as it was."""
    block = f"{BEGIN}\n{fragment.rstrip()}\n{END}\n"

    def render(current: str | None) -> str:
        if not current:
            return block
        if BEGIN in current and END in current:
            head, rest = current.split(BEGIN, 1)
            tail = rest.split(END, 1)[1].lstrip("\n")
            return head + block + tail
        return current.rstrip("\n") + "\n\n" + block

    return render


def drop_serial_console(current: str | None) -> str | None:
    """cmdline.txt without ``console=serial0,...``/``ttyAMA0``/``ttyS0``: the UART belongs to the GPS."""
    if current is None:
        return None  # not a Pi boot partition: nothing to do
    words = current.split()
    kept = [w for w in words if not w.startswith(("console=serial0", "console=ttyAMA0", "console=ttyS0"))]
    return current if kept == words else " ".join(kept) + "\n"


def plan(source: Path, console_script: Path | None = None) -> list[Item]:
    """Everything install-system manages, in the order it is applied."""
    fw, sd = source / "firmware_config", source / "systemd"
    items = [
        Item("boot/firmware/config.txt", managed_block((fw / "boot/firmware/config.txt").read_text())),
        Item("boot/firmware/cmdline.txt", drop_serial_console, note="serial console off the GPS UART"),
    ]
    for f in sorted(p for p in fw.rglob("*") if p.is_file() and p.parts[len(fw.parts)] != "boot"):
        items.append(Item(str(f.relative_to(fw)), _const(f.read_text())))
    for f in sorted((sd / "system").glob("*")):
        items.append(Item(f"etc/systemd/system/{f.name}", _const(f.read_text())))
    for f in sorted((sd / "sysusers.d").glob("*.conf")):
        items.append(Item(f"etc/sysusers.d/{f.name}", _const(f.read_text())))
    return items


def _const(text: str) -> Callable[[str | None], str]:
    return lambda _current: text


def apply(root: Path, items: list[Item], *, dry_run: bool = False, clock: Clock | None = None) -> list[Change]:
    """Apply the plan under ``root``; returns one Change per item."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime((clock or SystemClock()).wall_ns() // 1_000_000_000))
    changes = []
    for item in items:
        path = root / item.dest
        current = path.read_text() if path.is_file() else None
        wanted = item.render(current)
        if wanted is None:
            changes.append(Change("skip", item.dest, "absent here"))
            continue
        if wanted == current:
            changes.append(Change("unchanged", item.dest))
            continue
        backup = None
        if current is not None:
            backup_path = _free_name(path.with_name(f"{path.name}.bak-{stamp}"))
            backup = str(backup_path.relative_to(root))
            if not dry_run:
                atomic_write(backup_path, path.read_bytes(), mode=path.stat().st_mode & 0o7777)
        if not dry_run:
            atomic_write(path, wanted.encode(), mode=item.mode)
        changes.append(Change("update" if current is not None else "create", item.dest, item.note, backup))
    return changes


def link_console_script(root: Path, target: Path, *, dry_run: bool = False) -> Change:
    """``/usr/bin/evidence-agent`` -> this environment's console script (the units call that path)."""
    link = root / "usr/bin/evidence-agent"
    rel = "usr/bin/evidence-agent"
    if link.is_symlink() and os.readlink(link) == str(target):
        return Change("unchanged", rel)
    if link.exists() and not link.is_symlink():
        return Change("skip", rel, "a real file is there; left alone")
    action: Action = "update" if link.is_symlink() else "create"
    if not dry_run:
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(".evidence-agent.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
    return Change(action, rel, f"-> {target}")


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{n}"), n + 1
    return candidate


def _iter_lines(changes: list[Change], dry_run: bool) -> Iterator[str]:
    for c in changes:
        yield c.line(dry_run)
    n = sum(c.changed for c in changes)
    yield f"{'would change' if dry_run else 'changed'} {n} of {len(changes)} paths"


def cmd_install_system(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not root.is_dir():
        raise ConfigError(f"--root {root} is not a directory")
    source = find_source(Path(args.source) if args.source else None)
    changes = apply(root, plan(source), dry_run=args.dry_run)
    script = Path(sys.prefix) / "bin" / "evidence-agent"
    if script.exists():
        changes.append(link_console_script(root, script, dry_run=args.dry_run))
    for line in _iter_lines(changes, args.dry_run):
        print(line)
    if any(c.changed for c in changes) and not args.dry_run:
        print(
            "next: systemd-sysusers; udevadm control --reload; systemctl daemon-reload; "
            "systemctl restart chrony gpsd; reboot if boot/firmware changed"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``install-system --root DIR [--dry-run] [--source DIR]`` to the CLI."""
    p = subparsers.add_parser(
        "install-system", help="install firmware, chrony, gpsd, udev and systemd files (idempotent, with backups)"
    )
    p.add_argument("--root", default="/", help="filesystem root to install into (default /)")
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.add_argument("--source", help="checkout holding firmware_config/ and systemd/ (default: found automatically)")
    p.set_defaults(func=cmd_install_system)

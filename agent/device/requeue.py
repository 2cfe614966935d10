"""`evidence-agent requeue`: send again what the broker refused.

An item the broker refuses for good (not authorised, packet too large after re-cutting, a quota) is
kept in the outbox as ``rejected`` with the broker's reason -- never deleted, and still in the vault.
After fixing the cause (the certificate's CN, the broker's ACL or limits), this command lists them and
puts them back in the queue; a running service picks them up within a second, a stopped one at its next
start.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from agent.core.errors import ConfigError


def rejected_items(db: sqlite3.Connection) -> list[tuple[int, str, int | None, str | None, str | None]]:
    rows = db.execute("SELECT id, channel, seq, kind, reason FROM entries WHERE state='rejected' ORDER BY id")
    return [(int(r[0]), str(r[1]), r[2], r[3], r[4]) for r in rows.fetchall()]


def cmd_requeue(args: argparse.Namespace) -> int:
    from agent.device.config import load_config  # not at import: every evidence-agent command registers this one

    cfg = load_config(Path(args.config))
    if cfg.uplink is None or not cfg.uplink.enabled:
        raise ConfigError(f"{args.config}: no [uplink] is enabled, so nothing is queued for a broker")
    path = cfg.uplink.outbox_path
    if not path.is_file():
        raise ConfigError(f"outbox {path} does not exist (the service has not run with this config yet)")
    db = sqlite3.connect(str(path), timeout=30)
    try:
        items = rejected_items(db)
        for entry, channel, seq, kind, reason in items:
            print(f"rejected: seq {seq if seq is not None else '-'} {kind or ''} {channel} (entry {entry}): "
                  f"{reason or 'no reason recorded'}")
        if not items:
            print(f"{path}: nothing rejected")
            return 0
        if args.list:
            print(f"{len(items)} rejected item(s); run without --list to send them again")
            return 0
        with db:
            db.execute("UPDATE entries SET state='pending', reason=NULL WHERE state='rejected'")
    finally:
        db.close()
    print(f"re-queued {len(items)} item(s): a running service sends them within a second, a stopped one at "
          "its next start")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("requeue", help="list and send again the items the broker rejected (kept in the "
                                              "outbox with the broker's reason)")
    p.add_argument("--config", required=True, help="agent config (TOML)")
    p.add_argument("--list", action="store_true", help="only list the rejected items and why")
    p.set_defaults(func=cmd_requeue)

"""Listing an evidence folder: ``os.scandir``, no ``stat`` per file, never through a symbolic link.

The kind of each entry comes from the directory listing itself (``d_type``), so a folder of N files costs
one ``getdents`` pass and no per-file system call; the file is only opened (and ``fstat``-ed once, to check
it is still a regular file) when it is read. Folders named in ``skip`` (the vault's staging, orphans, log,
keys, private) are not entered at any depth.
"""

from __future__ import annotations

import os
from collections.abc import Collection

__all__ = ["SYMLINK_REFUSED", "walk"]

SYMLINK_REFUSED = "symbolic link refused (it may point outside the evidence)"


def walk(root: str, skip: Collection[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(files, refused) under ``root``: files as (``/``-separated relative name, path), sorted by path parts;
    refused as (relative name, why) for every symbolic link met (file or folder)."""
    files: list[tuple[str, str]] = []
    refused: list[tuple[str, str]] = []
    pending = [("", root)]
    while pending:
        rel, folder = pending.pop()
        with os.scandir(folder) as listing:
            for entry in listing:
                name = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_symlink():
                    refused.append((name, SYMLINK_REFUSED))
                elif entry.is_dir(follow_symlinks=False):
                    if entry.name not in skip:
                        pending.append((name, entry.path))
                elif entry.is_file(follow_symlinks=False):
                    files.append((name, entry.path))
    files.sort(key=lambda f: f[0].split("/"))
    refused.sort()
    return files, refused

#!/usr/bin/env python3
"""Check that every runtime dependency resolves to wheels for a Raspberry Pi (linux aarch64, CPython 3.11).

A Pi must install the agent without compiling anything (no compiler, slow SD card, hours for
numpy/cryptography). This asks pip to resolve the runtime dependencies from pyproject.toml
(plus the ``pi`` extra) for that platform with ``--only-binary=:all:``; any package that has
only an sdist there fails the resolution and is named.

    python scripts/check_aarch64_wheels.py [--extra pi] [--python-version 3.11] [--keep DIR]

Exit 0 when everything resolves, 1 when something has no wheel, 2 when the index is unreachable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Raspberry Pi OS bookworm has glibc 2.36, so any manylinux_2_N wheel with N <= 36 installs there
# (lgpio, for one, only ships manylinux_2_34). pip needs every accepted tag listed.
GLIBC_MAX = 36
PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{n}_aarch64" for n in range(17, GLIBC_MAX + 1))]

NETWORK_ERRORS = (
    "NewConnectionError",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeout",
    "ReadTimeout",
    "No route to host",
    "Connection refused",
)


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return reqs


def pip_download(reqs: list[str], dest: Path, python_version: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        "--no-cache-dir",
        "--timeout",
        "20",
        "--retries",
        "1",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "-d",
        str(dest),
    ]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    return subprocess.run([*cmd, *reqs], capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra", action="append", default=None, help="optional-dependency group (default: pi)")
    ap.add_argument("--python-version", default="3.11")
    ap.add_argument("--keep", help="download into this directory instead of a temporary one")
    args = ap.parse_args()
    reqs = requirements(args.extra if args.extra is not None else ["pi"])
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aarch64-wheels-") as tmp:
        dest = Path(args.keep) if args.keep else Path(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        result = pip_download(reqs, dest, args.python_version)
        failed: list[str] = []
        if result.returncode != 0:  # find the culprits one by one
            for req in reqs:
                if pip_download([req], dest, args.python_version).returncode != 0:
                    failed.append(req)
        wheels = sorted(p.name for p in dest.glob("*.whl"))
        others = sorted(p.name for p in dest.iterdir() if p.is_file() and not p.name.endswith(".whl"))
    print(f"requirements ({len(reqs)}): {', '.join(reqs)}")
    print(f"platform: cp{args.python_version.replace('.', '')}, aarch64, manylinux2014 / manylinux_2_17..2_{GLIBC_MAX}")
    for name in wheels:
        dist, version, tag = name.removesuffix(".whl").split("-", 2)
        print(f"  wheel  {dist:<24} {version:<12} {tag}")
    for name in others:
        print(f"  NOT A WHEEL  {name}")
    for req in failed:
        print(f"  NO WHEEL  {req}")
    if result.returncode != 0 and not failed:
        print(result.stderr.strip()[-2000:])
        if any(s in result.stderr for s in NETWORK_ERRORS):
            print("OFFLINE: the package index is unreachable; nothing was checked")
            return 2
    ok = result.returncode == 0 and not others
    print(f"{'OK' if ok else 'FAIL'}: {len(wheels)} wheels in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run a process under an address-space limit and measure its peak RSS; build hostile shapes cheaply.

``run_bounded`` starts a small wrapper that sets RLIMIT_AS on itself, runs the command as its child and
reports the child's peak RSS (``RUSAGE_CHILDREN`` of the wrapper: only that one child). ``zip_of_copies``
writes a zip whose members all share one deflated payload (many 16 MiB members in ~11 MB) without
compressing 2 GB; ``sparse_file`` makes a large file that takes no disk.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.helpers import REPO

LIMIT = 512 << 20

_WRAPPER = """
import json, resource, subprocess, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
res = subprocess.run(sys.argv[2:], capture_output=True)
sys.stdout.buffer.write(res.stdout)
sys.stderr.buffer.write(res.stderr)
sys.stderr.write("\\nBOUNDED " + json.dumps({"rc": res.returncode,
                 "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}) + "\\n")
"""


@dataclass(frozen=True)
class Bounded:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mib: float


def run_bounded(argv: Sequence[str], limit: int = LIMIT, timeout: float = 600) -> Bounded:
    """``argv`` (a Python module run as ``-m``, or any command) under ``limit`` bytes of address space."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", _WRAPPER, str(limit), *argv], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=timeout)
    head, _, tail = res.stderr.rpartition("\nBOUNDED ")
    info = json.loads(tail)
    return Bounded(info["rc"], res.stdout, head, info["maxrss_kib"] / 1024)


def agent(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent.device.cli", *args]


def zip_of_copies(path: Path, names: Sequence[str], size: int, ratio: int = 150,
                  first: Mapping[str, bytes] | None = None) -> None:
    """A zip whose members (``names``) each inflate to ``size`` bytes at about ``ratio``:1 (under the 200x
    bomb threshold), all sharing one deflate stream: written in seconds, ~size/ratio bytes per member.
    ``first`` members (a genuine bundle's) are stored ahead of them, uncompressed."""
    import random

    rnd = random.Random(7)
    block = bytearray(1 << 20)
    step = max(1, ratio * 5)  # one random byte every few hundred zeros deflates to roughly 1/ratio
    for i in range(0, len(block), step):
        block[i] = rnd.randrange(1, 256)
    data = bytes(block) * (size // len(block)) + bytes(block[: size % len(block)])
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = comp.compress(data) + comp.flush()
    crc = zlib.crc32(data) & 0xFFFFFFFF
    central = []
    members = [(name, 0, blob, zlib.crc32(blob) & 0xFFFFFFFF, len(blob), len(blob))
               for name, blob in (first or {}).items()]
    members += [(name, 8, raw, crc, len(raw), len(data)) for name in names]
    with open(path, "wb") as fh:
        for name, method, payload, c, csize, usize in members:
            n = name.encode()
            offset = fh.tell()
            fh.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, c, csize, usize, len(n), 0)
                     + n)
            fh.write(payload)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, c, csize,
                                       usize, len(n), 0, 0, 0, 0, 0o100644 << 16, offset) + n)
        start = fh.tell()
        for c in central:
            fh.write(c)
        end = fh.tell()
        fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), end - start, start, 0))


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path

"""``evidence-agent verify`` throughput against its floor, in the same run (x86 VM figures, not Pi figures).

Run:  .venv/bin/python benchmarks/verify_bench.py [-n 20000] [--media-bytes 4096] [--repeats 3] [--old REF] [--json]

Builds a vault of N stills with the real Sealer (fsync switched off while building: only the reading is
measured), then times, interleaved and ``--repeats`` times each, as separate processes:

* **floor** -- what any verifier must do: list the files (``os.scandir``), parse each record's two JSON lines,
  one ECDSA P-256 verification and one SHA-256 of the media per record; the chain checked once;
* **new** -- ``evidence-agent verify VAULT --ca ca.pem --json`` of this tree (the real CLI process);
* **old** -- the same command from ``git archive REF`` (default ``main``) unpacked into a temporary folder,
  so the old code runs with the same interpreter and libraries (``--old ''`` skips it).

Each runs once untimed first, with the bytecode cache allowed (``PYTHONDONTWRITEBYTECODE`` is dropped from the
children's environment), so startup is measured as an installed package has it, not with every module recompiled.

Prints records per CPU second of each process (user + system, from ``wait4``: what the code costs, and what a
machine shared with other work disturbs least) and per wall second, medians, with the ratios to the floor;
``--json`` prints one JSON document instead.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def build_vault(root: Path, n: int, media_bytes: int) -> tuple[Path, Path]:
    """(vault, ca.pem) with a restart record and ``n`` stills of ``media_bytes`` each."""
    sys.path.insert(0, str(REPO))
    import agent.core.fsutil as fsutil
    import agent.evidence.vault as vault_mod
    from agent.core.clock import ManualClock
    from agent.device.sealer import Sealer
    from agent.evidence.vault import Vault
    from agent.signing.keys import init_identity, load_identity
    from tests.conftest import moment

    real_fsync = os.fsync
    os.fsync = lambda fd: None  # building only: the benchmark measures reading
    saved = fsutil.fsync_dir, vault_mod.fsync_dir
    fsutil.fsync_dir = vault_mod.fsync_dir = lambda path: None  # type: ignore[assignment]
    try:
        init_identity(root / "keys", "bench-dev", "Bench")
        vault = Vault(root / "vault")
        clock = ManualClock(wall=time.time_ns())  # inside the new certificate's validity
        sealer = Sealer(vault, load_identity(root / "keys"), device_id="bench-dev", site_id="site", clock=clock)
        sealer.start(moment(clock))
        for i in range(n):
            clock.advance(0.01)
            media = i.to_bytes(8, "big") * (media_bytes // 8 + 1)
            sealer.seal("still", moment(clock), media=media[:media_bytes], media_type="image/jpeg", ext="jpg")
        vault.close()
    finally:
        os.fsync = real_fsync
        fsutil.fsync_dir, vault_mod.fsync_dir = saved
    return root / "vault", root / "keys" / "ca.pem"


def floor(vault: Path, ca_pem: Path) -> int:
    """The peer: scandir walk, JSON parse, ECDSA P-256 + SHA-256 per record, chain verified once."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    sys.path.insert(0, str(REPO))
    from agent.signing.trust import verify_chain

    anchors = x509.load_pem_x509_certificates(ca_pem.read_bytes())
    keys: dict[bytes, Any] = {}
    count = 0
    for bucket in sorted(e.path for e in os.scandir(vault / "items") if e.is_dir() and e.name.isdigit()):
        for entry in sorted(os.scandir(bucket), key=lambda e: e.name):
            if not entry.name.endswith(".rec"):
                continue
            with open(entry.path, "rb") as fh:
                body, env_line = fh.read().split(b"\n")[:2]
            record, env = json.loads(body), json.loads(env_line)
            x5c = [base64.b64decode(c) for c in env["x5c"]]
            key = keys.get(x5c[0])
            if key is None:  # the chain, once
                certs = [x509.load_der_x509_certificate(c) for c in x5c]
                verify_chain(certs, anchors)  # the project's policy (a device leaf has no SAN)
                key = keys[x5c[0]] = certs[0].public_key()
            key.verify(base64.b64decode(env["sig"]), body, ec.ECDSA(hashes.SHA256()))
            media = record.get("media")
            if media:
                with open(os.path.join(bucket, media["name"]), "rb") as fh:
                    if hashlib.sha256(fh.read()).hexdigest() != media["sha256"]:
                        raise SystemExit(f"media mismatch {media['name']}")
            count += 1
    return count


def old_tree(ref: str, dest: Path) -> Path:
    """``git archive ref`` unpacked into ``dest`` (no worktree registered in the repository)."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", ref, "agent"], check=True, capture_output=True).stdout
    tmp = dest / "old.tar"
    tmp.write_bytes(data)
    with tarfile.open(tmp) as tar:
        tar.extractall(dest / "old", filter="data")
    return dest / "old"


def timed(cmd: list[str], env: dict[str, str] | None, cwd: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the child: user + system, from wait4), stdout; exits on a failed run.

    ``cwd`` must not hold an ``agent`` package: ``python -m`` puts the working directory first on sys.path."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {stdout[-400:]} {stderr[-800:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("-n", type=int, default=20_000, help="stills in the vault (default 20000)")
    ap.add_argument("--media-bytes", type=int, default=4096, help="size of each still (default 4096)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each, interleaved (default 3)")
    ap.add_argument("--old", default="main", help="git ref of the old code ('' to skip; default main)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--floor", nargs=2, metavar=("VAULT", "CA"), help=argparse.SUPPRESS)  # the peer's own process
    args = ap.parse_args(argv)
    if args.floor:
        print(floor(Path(args.floor[0]), Path(args.floor[1])))
        return 0
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as d:
        root = Path(d)
        t = time.perf_counter()
        vault, ca = build_vault(root, args.n, args.media_bytes)
        built_s = time.perf_counter() - t
        records = args.n + 1
        cli = ["verify", str(vault), "--ca", str(ca), "--json"]
        # As installed (pip writes the bytecode cache): PYTHONDONTWRITEBYTECODE would recompile every run.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        runs: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "floor": ([PY, str(Path(__file__).resolve()), "--floor", str(vault), str(ca)],
                      {**env, "PYTHONPATH": str(REPO)}),
            "new": ([PY, "-m", "agent.device.cli", *cli], {**env, "PYTHONPATH": str(REPO)}),
        }
        if args.old:
            old = old_tree(args.old, root)
            runs["old"] = ([PY, "-m", "agent.device.cli", *cli], {**env, "PYTHONPATH": str(old)})
        small, small_ca = build_vault(root / "one", 0, args.media_bytes)  # startup: a vault of one record
        for cmd, run_env in runs.values():  # untimed warm-up: bytecode cache written, files in page cache
            timed([small_ca.as_posix() if c == str(ca) else small.as_posix() if c == str(vault) else c for c in cmd],
                  run_env, root)
        times: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        start_cpu: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeats):
            for name, (cmd, env) in runs.items():
                small_cmd = [small_ca.as_posix() if c == str(ca) else small.as_posix() if c == str(vault) else c
                             for c in cmd]
                start_cpu[name].append(timed(small_cmd, env, root)[1])
                elapsed, used, out = timed(cmd, env, root)
                if name == "floor":
                    assert int(out) == records, out
                else:
                    doc = json.loads(out)
                    assert doc["ok"] and doc["trusted"] and doc["items"] == records, doc
                times[name].append(elapsed)
                cpu[name].append(used)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    rate = {k: records / v for k, v in med.items()}
    rate_cpu = {k: records / v for k, v in med_cpu.items()}
    startup = {k: statistics.median(v) for k, v in start_cpu.items()}
    marginal = {k: (records - 1) / max(1e-9, med_cpu[k] - startup[k]) for k in runs}
    result = {"records": records, "media_bytes": args.media_bytes, "repeats": args.repeats,
              "build_s": round(built_s, 1), "cpus": os.cpu_count(),
              "wall_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
              "cpu_s": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
              "rec_per_cpu_s": {k: round(v) for k, v in rate_cpu.items()},
              "ratio_to_floor_cpu": {k: round(v / rate_cpu["floor"], 3) for k, v in rate_cpu.items() if k != "floor"},
              "startup_cpu_s": {k: round(v, 3) for k, v in startup.items()},
              "marginal_rec_per_cpu_s": {k: round(v) for k, v in marginal.items()},
              "marginal_ratio_to_floor": {k: round(v / marginal["floor"], 3) for k, v in marginal.items()
                                          if k != "floor"},
              "rec_per_wall_s": {k: round(v) for k, v in rate.items()},
              "ratio_to_floor_wall": {k: round(v / rate["floor"], 3) for k, v in rate.items() if k != "floor"}}
    if "old" in rate:
        result["new_over_old_cpu"] = round(rate_cpu["new"] / rate_cpu["old"], 2)
        result["new_over_old_wall"] = round(rate["new"] / rate["old"], 2)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"verify of {records} records ({args.media_bytes}-byte stills), medians of {args.repeats}, "
              f"{os.cpu_count()} CPUs (x86 VM, not Pi figures):")
        print("  (records per CPU second of the process -- user + system -- and per wall second)")
        for k in runs:
            ratio = "" if k == "floor" else (f"  {result['ratio_to_floor_cpu'][k]:.2f}x / "
                                             f"{result['ratio_to_floor_wall'][k]:.2f}x the floor")
            print(f"  {k:6s} {rate_cpu[k]:7.0f} rec/CPU-s ({med_cpu[k]:.2f} s)  {rate[k]:7.0f} rec/s "
                  f"({med[k]:.2f} s wall){ratio}")
        print("  startup (a one-record vault), CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in startup.items()))
        print("  records per CPU second beyond startup: " + ", ".join(
            f"{k} {v:.0f}" + ("" if k == "floor" else f" ({result['marginal_ratio_to_floor'][k]:.2f}x)")
            for k, v in marginal.items()))
        if "old" in rate:
            print(f"  new / old: {result['new_over_old_cpu']:.2f}x (CPU), {result['new_over_old_wall']:.2f}x (wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

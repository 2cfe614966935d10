#!/usr/bin/env python3
"""Manual crash loop: kill -9 the real agent 100+ times with a broker, TSA and ledger, then account for it all.

    python scripts/crash_loop.py --kills 120 [--plain] [--seed 1] [--max-s 3] [--json out.json]

Runs the same checks as tests/faults/test_crash_loop.py (the CI version, 20 kills) and prints the figures
quoted in docs/reliability.md. Exit 0 when nothing sealed was lost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from tests.faults.crash_loop import Kill, crash_loop
    from tests.faults.rig import Rig
    from tests.faults.test_crash_loop import check_crash_loop
    from tests.support.broker import Mosquitto
    from tests.support.ledger_server import LocalLedger
    from tests.support.tsa_server import LocalTsa

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=120)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-s", type=float, default=3.0, help="latest kill after the restart record (seconds)")
    p.add_argument("--still-interval", type=float, default=0.3)
    p.add_argument("--plain", action="store_true", help="plain TCP broker instead of mutual TLS")
    p.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="write the figures and every kill here")
    a = p.parse_args()

    tmp = None if a.keep else tempfile.TemporaryDirectory(prefix="crash-loop-")
    root = a.keep or Path(tmp.name)  # type: ignore[union-attr]
    broker = Mosquitto(root / "broker", tls=not a.plain)
    broker.start()
    tsa, ledger = LocalTsa(), LocalLedger()
    rig = Rig(root / "device", broker=broker, tsa=tsa, ledger=ledger, still_interval_s=a.still_interval)
    rig.start_ingest()

    def show(k: Kill) -> None:
        print(f"kill {k.n + 1:4d}/{a.kills} at {k.at_s:6.2f} s {'(start-up)' if k.during_startup else '':10s} "
              f"last seq {k.last_seq:6d} {k.last_kind:10s} exposure {k.exposure_s}", flush=True)

    failure = None
    try:
        res = crash_loop(rig, a.kills, seed=a.seed, max_s=a.max_s, log=show)
        ingest = rig.stop_ingest()
        figures = res.figures()
        figures["ingest_records"] = ingest.get("records")
        figures["ingest_missing"] = len(ingest.get("missing", []))
        print(json.dumps(figures, indent=2))
        if a.json:
            a.json.write_text(json.dumps({**res.as_dict(), "figures": figures}, indent=2) + "\n")
        try:
            check_crash_loop(rig, res, ingest)  # needs the TSA's CA file: before the fixtures close
        except AssertionError as exc:
            import traceback

            failure = "".join(traceback.format_exception(exc))
    finally:
        rig.close()
        broker.stop()
        tsa.close()
        ledger.close()
        if tmp is not None:
            tmp.cleanup()
    if failure is not None:
        print(f"LOSS OR INCONSISTENCY: {failure}", file=sys.stderr)
        return 1
    print("OK: every sealed item verified on the device and at the officer's ingest; every gap recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())

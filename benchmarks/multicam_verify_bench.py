"""What checking a two-camera case's bundle costs against checking each camera's bundle on its own.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/multicam_verify_bench.py [--items 300] [--rounds 5] [--json]

Two devices (real sealers, one development CA each) seal a case of ``--items`` records each (stills of 64 KiB
every tenth item, marks otherwise) between ``inspection_start`` and ``inspection_end``; the report is built as
``evidence-officer inspection report`` builds it (PDF, officer signature, the primary's seal). Measured, same
run, interleaved, medians of ``--rounds``: ``agent.signing.verify.check`` with the report checker of

- the two-device bundle (``devices/<id>/`` chains, ``evidence-report/3``: each chain checked on its own, then
  each device's signed run), and
- the peer an officer would otherwise use: each device's run exported as its own one-device bundle
  (``write_bundle``, no report), verified one after the other.

Prints the ratio multicam / separate. x86 VM figures, never Pi figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.customs.inspection import evidence as ev  # noqa: E402
from agent.customs.inspection.bundle import write_bundle  # noqa: E402
from agent.customs.inspection.report import build_report, verify_bundle  # noqa: E402
from tests.support.helpers import moment  # noqa: E402
from tests.support.multicam import STORE, YARD, two_cameras  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=300, help="records per device inside the case")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        two = two_cameras(root)
        service = two.service()
        service.start()
        blob = os.urandom(64 << 10)
        for n in range(args.items):
            for device in (YARD, STORE):
                sealer = two.site.sealers[device]
                two.site.clock.advance(1)
                if n % 10 == 0:
                    sealer.seal("still", moment(two.site.clock), media=blob, media_type="image/jpeg", ext="jpg",
                                extra={"label": "inspection"})
                else:
                    sealer.seal("mark", moment(two.site.clock), extra={"note": f"item {n}"})
        service.end()
        t = time.perf_counter()
        result = build_report(service, two.evidence, root / "out", two.officer, wait_s=0, lang="en")
        build_s = time.perf_counter() - t
        assert result.verify["ok"], result.verify["problems"]
        singles = []
        for device in (YARD, STORE):
            first, last = service.inspection.run_of(device)
            items = ev.load_items(two.evidence / device, int(first or 0), last)
            out = root / f"{device}.zip"
            write_bundle(two.evidence / device, items, out, {})
            singles.append(out)
        multi_s, separate_s = [], []
        for _ in range(args.rounds):  # interleaved: the machine's load hits both alike
            t = time.perf_counter()
            assert verify_bundle(result.bundle, two.officer).ok
            multi_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            for b in singles:
                verify_bundle(b)
            separate_s.append(time.perf_counter() - t)
        two.close()
    doc = {"items_per_device": args.items, "bundle_items": result.items, "build_report_s": round(build_s, 3),
           "verify_multicam_median_s": round(statistics.median(multi_s), 4),
           "verify_separate_median_s": round(statistics.median(separate_s), 4),
           "ratio_multicam_vs_separate": round(statistics.median(multi_s) / statistics.median(separate_s), 3),
           "rounds": args.rounds}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for k, v in doc.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

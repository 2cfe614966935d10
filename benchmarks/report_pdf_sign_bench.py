"""How long the PAdES signatures on a 25-minute inspection's report PDF take, against building the report.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/report_pdf_sign_bench.py [--minutes 25] [--pdf FILE] [--json]

Builds the report of a simulated inspection exactly as ``inspection_report_bench.py`` does (or takes ``--pdf``),
then times, on that PDF: the officer's ``sign_report_pdf`` (signature page + PAdES, without and with an RFC 3161
timestamp from a local ``openssl ts`` TSA), the enterprise countersignature, and validating both signatures
(``agent.pades.check.check_pdf``: pyHanko's validator with diff analysis). Best of three for each step.
x86 figures on a shared machine, never Pi figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.customs.legal.officer import sign_report_pdf  # noqa: E402
from agent.pades.check import check_pdf  # noqa: E402
from agent.pades.sign import ENTERPRISE_FIELD, SignatureRequest, sign_pdf  # noqa: E402
from tests.support import pades  # noqa: E402
from tests.support.tsa_server import LocalTsa  # noqa: E402


def best(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    out, best_s = None, float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        best_s = min(best_s, time.perf_counter() - t)
    return best_s, out


def build(tmp: Path, minutes: float) -> tuple[bytes, float, dict[str, float]]:
    import inspection_report_bench as irb  # type: ignore[import-not-found]

    from agent.customs.inspection.report import build_report
    from agent.customs.inspection.service import InspectionService
    from agent.customs.keys import init_officer

    store, sealer, clock, vault, _items = irb.simulate(tmp, minutes, 5.0, 10.0, 1024)
    officer = init_officer(tmp / "officer", "officer-bench")
    service = InspectionService(store, "BENCH-1", irb.SealOnDevice(sealer, clock), officer="officer-bench")
    t = time.perf_counter()
    res = build_report(service, tmp / "evidence", tmp / "out", officer, wait_s=0)
    build_s = time.perf_counter() - t
    vault.close()
    return res.pdf.read_bytes(), build_s, res.seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=25.0)
    p.add_argument("--pdf", help="time this PDF instead of building a simulated inspection's report")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        build_s: float | None = None
        steps: dict[str, float] = {}
        if args.pdf:
            pdf = Path(args.pdf).read_bytes()
        else:
            pdf, build_s, steps = build(tmp, args.minutes)
        off, ent = pades.officer(tmp / "o"), pades.enterprise(tmp / "e")
        tsa = LocalTsa()
        try:
            sign_s, signed = best(lambda: sign_report_pdf(pdf, off.key, off.cert, [off.ca]))
            sign_tsa_s, _ = best(lambda: sign_report_pdf(pdf, off.key, off.cert, [off.ca], tsa_url=tsa.url))
        finally:
            tsa.close()
        counter_s, counter = best(lambda: sign_pdf(signed, ent.key, ent.cert, [ent.cert, ent.ca],
                                                   SignatureRequest(ENTERPRISE_FIELD, "seal", "Countersigned")))
        check_s, report = best(lambda: check_pdf(counter, officer_roots=[off.ca], enterprise_roots=[ent.ca]))
    out = {"pdf_kb": round(len(pdf) / 1024), "signed_kb": round(len(signed) / 1024),
           "countersigned_kb": round(len(counter) / 1024),
           "report_build_s": None if build_s is None else round(build_s, 2),
           "report_pdf_render_s": round(steps["pdf_s"], 2) if "pdf_s" in steps else None,
           "officer_sign_s": round(sign_s, 3), "officer_sign_with_tsa_s": round(sign_tsa_s, 3),
           "enterprise_countersign_s": round(counter_s, 3), "validate_both_s": round(check_s, 3),
           "validated": report.ok and report.trusted}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:28} {v}")
    return 0 if out["validated"] else 1


if __name__ == "__main__":
    sys.exit(main())

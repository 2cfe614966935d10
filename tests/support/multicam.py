"""A two-camera inspection sealed by two real sealers (one per device, each with its own development CA),
driven through ``InspectionService`` as the CLI and the console drive it; ``FakeSite`` stands in for the
broker and answers each signed command with what the addressed device's sealer sealed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.clock import ManualClock
from agent.customs.inspection.model import Inspection, InspectionStore
from agent.customs.inspection.service import InspectionService
from agent.customs.keys import OfficerKey
from agent.device.sealer import Sealer
from agent.evidence.vault import Vault
from agent.signing.keys import CA_FILE, init_identity, load_identity
from tests.support.helpers import moment
from tests.support.report_bundle import OFFICER, SITE, SQUARE, jpeg_bytes, officer_with_ca

CASE = "C-2026/0123"
YARD, STORE = "cam-yard", "cam-store"


class FakeSite:
    """The broker and the site's devices: each command is sealed by the addressed device's own sealer."""

    def __init__(self, sealers: dict[str, Sealer], clock: ManualClock) -> None:
        self.sealers, self.clock, self.sent = sealers, clock, []  # type: list[tuple[str, str]]

    def request(self, site: str, device: str, command: str, args: dict[str, Any] | None = None, *,
                nonce: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        args = dict(args or {})
        self.sent.append((device, command))
        sealer = self.sealers[device]
        self.clock.advance(1)
        kind = {"inspection.start": "inspection_start", "inspection.end": "inspection_end",
                "inspection.decision": "decision", "inspection.report": "report", "mark": "mark"}.get(command)
        if command == "snapshot":
            item = sealer.seal("still", moment(self.clock), media=jpeg_bytes(), media_type="image/jpeg", ext="jpg",
                               extra={"label": args.get("label")})
            return {"result": {"seq": item.seq, "record_hash": item.record_hash,
                               "gps": {"fix": "3d", "lat": 31.2304, "lon": 121.4737, "hdop": 0.9, "satellites": 9}}}
        assert kind is not None, command
        item = sealer.seal(kind, moment(self.clock), extra={**args, **({"officer": OFFICER} if kind == "report"
                                                                       else {})})
        return {"result": {"seq": item.seq, "record_hash": item.record_hash}}


@dataclass
class TwoCameras:
    root: Path
    evidence: Path
    data: Path
    officer: OfficerKey
    officer_ca: Path
    device_cas: list[Path]
    site: FakeSite
    vaults: list[Vault]

    def service(self) -> InspectionService:
        return InspectionService(InspectionStore(self.data), CASE, self.site, officer=OFFICER)

    def close(self) -> None:
        for v in self.vaults:
            v.close()


def two_cameras(root: Path, *, store_site: str = SITE) -> TwoCameras:
    """Two devices (``store_site``: the second one's own site id) and an opened two-device case."""
    clock = ManualClock(wall=time.time_ns())
    sealers, vaults, cas = {}, [], []
    for device, site in ((YARD, SITE), (STORE, store_site)):
        init_identity(root / f"{device}-keys", device, "Test Customs")
        vault = Vault(root / "evidence" / device)
        sealer = Sealer(vault, load_identity(root / f"{device}-keys"), device_id=device, site_id=site)
        sealer.start(moment(clock))
        sealer.seal("still", moment(clock), media=jpeg_bytes((9, 9, 9)), media_type="image/jpeg", ext="jpg")
        sealers[device], vaults, cas = sealer, [*vaults, vault], [*cas, root / f"{device}-keys" / CA_FILE]
    InspectionStore(root / "data").create(Inspection(case=CASE, enterprise="Green Fields Ltd", devices=[YARD, STORE],
                                                     site=SITE, polygon=SQUARE))
    officer, officer_ca = officer_with_ca(root)
    return TwoCameras(root, root / "evidence", root / "data", officer, officer_ca, cas, FakeSite(sealers, clock),
                      vaults)


def run_case(two: TwoCameras) -> InspectionService:
    """Start (on both), check-ins on either device, a mark and a decision, end (on both)."""
    service = two.service()
    service.start()
    service.checkin("location")
    service.checkin("identity_document", device=STORE)
    two.site.clock.advance(1)  # the store's camera is covered: an alert sealed by that device alone
    two.site.sealers[STORE].seal("event", moment(two.site.clock), extra={"type": "too_dark", "phase": "onset"})
    service.mark("yard gate open", device=YARD)
    service.snapshot("input store shelves", device=STORE)
    service.decision("continue", "all shown")
    service.end()
    return service

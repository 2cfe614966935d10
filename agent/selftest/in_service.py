"""The self-test inside the running service (the officer's MQTT ``selftest`` command).

The service hands small probes -- a frame reader, the GPS, the clock quality, its own broker link, the
vault's numbers, the identity and a seal function -- rather than itself, so the self-test never imports
the runtime (no cycle) and reads the live devices instead of opening ones the service already owns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.core.clock import Clock
from agent.core.model import Frame, SealedItem, TimeQuality
from agent.gps.provider import GpsProvider
from agent.selftest.checks import (
    CheckResult,
    SelftestReport,
    check_broker,
    check_camera,
    check_clock,
    check_disk,
    check_gps,
    check_identity,
    run_selftest,
)
from agent.signing.keys import DeviceIdentity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerProbe:
    """The service's own link: ``connected(timeout)`` is None once connected, else why not."""

    connected: Callable[[float], str | None]
    target: str
    tls: bool
    note: str | None = None


@dataclass(frozen=True)
class ServiceProbes:
    """What the running service lends the self-test."""

    camera: str
    simulated_camera: bool
    frames: Callable[[], list[Frame]]
    gps: GpsProvider
    time_quality: Callable[[], TimeQuality]
    broker: BrokerProbe | None
    vault_path: Path
    quota_bytes: int
    used_bytes: Callable[[], int]
    identity: Callable[[], DeviceIdentity]
    clock: Clock
    seal: Callable[[dict[str, Any]], SealedItem]


def selftest_in_service(p: ServiceProbes, *, gps_wait: float = 3.0, broker_timeout: float = 5.0,
                        seal: bool = True) -> SelftestReport:
    """The command line's checks against the live service; sealed (kind ``selftest``) by its sealer."""

    def broker() -> CheckResult:
        if p.broker is None:
            return check_broker(None, broker_timeout)
        return check_broker(p.broker.connected, broker_timeout, target=p.broker.target, tls=p.broker.tls,
                            note=p.broker.note)

    report = run_selftest([
        lambda: check_camera(p.frames, p.camera, simulated=p.simulated_camera),
        lambda: check_gps(p.gps, gps_wait),
        lambda: check_clock(p.time_quality()),
        broker,
        lambda: check_disk(p.vault_path, p.quota_bytes, p.used_bytes()),
        lambda: check_identity(p.identity, p.clock),
    ])
    if not seal:
        return report
    item = p.seal(report.as_record())
    log.info("selftest %s, sealed as seq %d", "passed" if report.passed else "FAILED", item.seq)
    return replace(report, sealed={"seq": item.seq, "record_hash": item.record_hash})

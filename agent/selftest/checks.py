"""Pre-inspection equipment self-test: the checks a customs remote inspection starts with.

Camera delivers frames, GPS has a fix of usable quality, the clock is synchronised, the broker is
reachable over TLS with the device certificate, the disk has room within the quota, and the key and
certificate are valid and not near expiry. Each check is pass / warn / fail with a reason; the whole
result is printed as a table, sealed into the chain (kind ``selftest``) and so uploaded with the rest.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.core.clock import Clock
from agent.core.errors import AgentError
from agent.core.model import Frame, TimeQuality
from agent.gps.provider import GpsProvider
from agent.signing.keys import DeviceIdentity

Status = Literal["pass", "warn", "fail"]
CERT_WARN_DAYS = 30
MIN_FREE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SelftestReport:
    results: tuple[CheckResult, ...]
    sealed: dict[str, Any] | None = None  # seq and record hash once the report itself is sealed

    @property
    def passed(self) -> bool:
        return all(r.status != "fail" for r in self.results)

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "passed": self.passed,
            "checks": [{"name": r.name, "status": r.status, "detail": r.detail, **r.data} for r in self.results]}
        if self.sealed is not None:
            rec["sealed"] = dict(self.sealed)
        return rec

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def table(self) -> str:
        width = max(len(r.name) for r in self.results)
        lines = [f"{'check':<{width}}  result  detail", f"{'-' * width}  ------  ------"]
        lines += [f"{r.name:<{width}}  {r.status.upper():<6}  {r.detail}" for r in self.results]
        lines.append(f"selftest {'PASSED' if self.passed else 'FAILED'}")
        return "\n".join(lines)


def check_camera(read_frames: Callable[[], list[Frame]], describe: str, *, simulated: bool = False) -> CheckResult:
    try:
        frames = read_frames()
    except AgentError as exc:
        return CheckResult("camera", "fail", f"{describe}: {exc}")
    if len(frames) < 2:
        return CheckResult("camera", "fail", f"{describe}: delivered {len(frames)} frame(s)")
    h, w = frames[-1].height, frames[-1].width
    span = (frames[-1].mono_ns - frames[0].mono_ns) / 1e9
    fps = (len(frames) - 1) / span if span > 0 else 0.0
    still = bool(frames[-1].image.std() < 2.0)
    status: Status = "warn" if still or simulated else "pass"
    detail = f"{describe}: {len(frames)} frames {w}x{h} at {fps:.1f} fps" + (" (image is uniform)" if still else "")
    if simulated:
        detail += " (SYNTHETIC test pattern, not a camera)"
    return CheckResult("camera", status, detail, {"width": w, "height": h, "fps": round(fps, 2)})


def check_gps(gps: GpsProvider, wait_s: float, sleep: Callable[[float], None] = time.sleep) -> CheckResult:
    deadline = time.monotonic() + wait_s
    reading = gps.reading()
    if reading.status == "disabled":
        return CheckResult("gps", "fail", "GPS is disabled in the configuration (gps.source)", {"fix": "none"})
    # wait for a fix, and for its quality (gpsd reports HDOP and satellites in SKY, after the TPV)
    while (reading.fix is None or reading.fix.hdop is None) and time.monotonic() < deadline:
        sleep(0.2)
        reading = gps.reading()
    if reading.fix is None:
        return CheckResult("gps", "fail", f"no fix after {wait_s:g} s ({reading.status})", {"fix": "none"})
    f = reading.fix
    parts = [f"{f.mode}D fix", "HDOP not reported" if f.hdop is None else f"HDOP {f.hdop}"]
    if f.satellites is not None:
        parts.append(f"{f.satellites} satellites")
    parts.append(f"talker {f.talker}")
    detail = ", ".join(parts)
    status: Status = "pass"
    if f.mode < 3 or f.hdop is None or f.hdop > 5:
        status = "warn"
    if f.talker == "sim":
        status, detail = "warn", detail + " (SIMULATED receiver)"
    return CheckResult("gps", status, detail, {"fix": f"{f.mode}d", "hdop": f.hdop, "satellites": f.satellites})


def check_clock(quality: TimeQuality) -> CheckResult:
    data = quality.as_record()
    if quality.synced:
        err = "" if quality.est_error_s is None else f", estimated error {quality.est_error_s:.4f} s"
        return CheckResult("clock", "pass", f"synchronised ({quality.source}){err}", data)
    return CheckResult("clock", "warn", "not synchronised: records will say time source 'unsynced'", data)


def check_broker(connect: Callable[[float], str | None] | None, timeout: float, *, target: str = "",
                 tls: bool = True, note: str | None = None) -> CheckResult:
    """``connect(timeout)`` returns None on an accepted connection, else the reason.

    ``note`` (e.g. "the TLS client certificate is not the device certificate") turns a pass into a warning.
    """
    if connect is None:
        return CheckResult("broker", "warn", "no uplink configured (evidence stays in the local vault)")
    where = f"{target}: " if target else ""
    reason = connect(timeout)
    if reason is not None:
        return CheckResult("broker", "fail", f"{where}{reason}", {"broker": target})
    if not tls:
        return CheckResult("broker", "warn", f"{where}connected WITHOUT TLS (plain mqtt://)", {"broker": target})
    if note:
        return CheckResult("broker", "warn", f"{where}connected over TLS, but {note}", {"broker": target})
    return CheckResult("broker", "pass", f"{where}connected over TLS with the device certificate", {"broker": target})


def check_disk(vault_path: Path, quota_bytes: int, used_bytes: int) -> CheckResult:
    free = shutil.disk_usage(vault_path).free
    data = {"free_bytes": free, "quota_bytes": quota_bytes, "used_bytes": used_bytes}
    detail = f"{free / 2**30:.1f} GiB free; vault uses {used_bytes / 2**20:.1f} of {quota_bytes / 2**20:.0f} MiB"
    if used_bytes >= quota_bytes or free < MIN_FREE_BYTES:
        return CheckResult("disk", "fail", detail, data)
    if used_bytes > 0.9 * quota_bytes:
        return CheckResult("disk", "warn", detail + " (over 90 % of quota)", data)
    return CheckResult("disk", "pass", detail, data)


def check_identity(load: Callable[[], DeviceIdentity], clock: Clock) -> CheckResult:
    try:
        ident = load()
    except AgentError as exc:
        return CheckResult("identity", "fail", str(exc))
    now = dt.datetime.fromtimestamp(clock.wall_ns() / 1e9, dt.UTC)
    cert = ident.cert
    left = (cert.not_valid_after_utc - now).days
    data = {"key_id": ident.key_id, "not_after": cert.not_valid_after_utc.isoformat(), "days_left": left}
    subject = cert.subject.rfc4514_string()
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return CheckResult("identity", "fail", f"certificate {subject} is not valid now", data)
    if left < CERT_WARN_DAYS:
        return CheckResult("identity", "warn", f"certificate {subject} expires in {left} days", data)
    return CheckResult("identity", "pass", f"key {ident.key_id[:16]}…, certificate {subject}, {left} days left", data)


def run_selftest(checks: list[Callable[[], CheckResult]]) -> SelftestReport:
    """Run each check; a check that raises becomes a failure rather than aborting the test."""
    results = []
    for check in checks:
        try:
            results.append(check())
        except Exception as exc:  # the self-test must report, not crash
            results.append(CheckResult(getattr(check, "__name__", "check"), "fail", f"check crashed: {exc!r}"))
    return SelftestReport(tuple(results))

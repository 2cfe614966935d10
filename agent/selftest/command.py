"""`evidence-agent selftest`: the pre-inspection equipment test, from the config or inside the service.

The command line opens the configured camera, GPS, time source and broker itself, prints the table,
seals the result (kind ``selftest``) and exits 0 (pass) or 1 (fail). While the agent service runs it
holds the vault (and usually the camera): the command then still reports but does not seal, and
points at the officer's MQTT ``selftest`` command, which runs
:func:`agent.selftest.in_service.selftest_in_service` inside the
service against the live frame hub and sensors and seals from there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from agent.capture.base import CaptureBackend, backend_class
from agent.core.clock import Clock, SystemClock
from agent.core.errors import AgentError, CaptureError, VaultError
from agent.core.model import Frame
from agent.device.config import AgentConfig, load_config
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
from agent.signing.keys import key_id_of, load_identity
from agent.uplink.settings import UplinkConfig
from agent.wire.errors import connect_error_text, tls_file_problem
from agent.wire.mqtt import MqttLink
from agent.wire.mqtt_settings import MqttConfig

if TYPE_CHECKING:
    from agent.device.pipeline import FrameHub

log = logging.getLogger(__name__)

FRAME_WINDOW_S = 1.0
MAX_FRAMES = 30
CAMERA_GRACE_S = 5.0  # a camera that has not delivered within window + grace is reported as hung
IN_USE = "in use by another agent process"


# -- camera ------------------------------------------------------------------------------------
def read_camera(camera: CaptureBackend, window_s: float = FRAME_WINDOW_S) -> list[Frame]:
    """Open the camera and collect frames for ``window_s``; a hung camera fails instead of blocking."""
    frames: list[Frame] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            camera.open()
            start = time.monotonic()
            while time.monotonic() - start < window_s and len(frames) < MAX_FRAMES:
                frames.append(camera.read())
        except Exception as exc:  # reported below, in the caller's thread
            failure.append(exc)

    t = threading.Thread(target=work, name="selftest-camera", daemon=True)
    t.start()
    t.join(window_s + CAMERA_GRACE_S)
    if t.is_alive():  # read() is stuck inside the driver: close from a side thread, never block the test
        threading.Thread(target=camera.close, name="selftest-camera-close", daemon=True).start()
        raise CaptureError(f"camera stopped delivering: {len(frames)} frame(s) in "
                           f"{window_s + CAMERA_GRACE_S:g} s (camera hung)")
    camera.close()
    if failure and not isinstance(failure[0], AgentError):
        raise CaptureError(f"camera failed: {failure[0]!r}")
    if failure and len(frames) < 2:
        raise failure[0]
    return list(frames)


def frames_from_hub(hub: FrameHub, window_s: float = FRAME_WINDOW_S) -> list[Frame]:
    """The running service's frames over ``window_s``, read through a subscription (capture never pauses)."""
    if hub.error is not None:
        raise CaptureError(f"camera failed: {hub.error}")
    sub = hub.subscribe("selftest", maxsize=MAX_FRAMES * 2)
    frames: list[Frame] = []
    try:
        deadline = time.monotonic() + window_s
        while (left := deadline - time.monotonic()) > 0:
            frame = sub.get(timeout=left)
            if frame is not None:
                frames.append(frame)
            elif hub.ended.is_set():
                break
    finally:
        hub.unsubscribe(sub)
    if hub.error is not None and len(frames) < 2:
        raise CaptureError(f"camera failed: {hub.error}")
    return frames


# -- broker ------------------------------------------------------------------------------------
def diagnose_broker(mqtt: MqttConfig, timeout: float = 5.0) -> str | None:
    """Why TCP or TLS to the broker fails, step by step; None when both work (the problem is in MQTT)."""
    url = mqtt.url
    try:
        sock = socket.create_connection((url.host, url.port), timeout=timeout)
    except socket.gaierror as exc:
        return f"cannot resolve host {url.host!r}: {exc.strerror}"
    except ConnectionRefusedError:
        return f"connection refused by {url.host}:{url.port} (broker not running, or wrong port)"
    except TimeoutError:
        return f"no answer from {url.host}:{url.port} within {timeout:g} s (network down or firewall)"
    except OSError as exc:
        return f"cannot connect to {url.host}:{url.port}: {exc.strerror or exc}"
    with sock:
        if not url.tls or mqtt.tls is None:
            return None
        tls = mqtt.tls
        try:
            ctx = ssl.create_default_context(cafile=str(tls.ca_file))
            if tls.cert_file is not None and tls.key_file is not None:
                ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            return (f"cannot load the TLS files (CA {tls.ca_file}, certificate {tls.cert_file}): "
                    f"{tls_file_problem(tls) or exc}")
        try:
            with ctx.wrap_socket(sock, server_hostname=url.host) as conn:
                # TLS 1.3: a broker that rejects our certificate says so with an alert after the handshake.
                conn.settimeout(min(timeout, 0.5))
                with contextlib.suppress(TimeoutError):  # timeout: the broker awaits CONNECT, TLS is fine
                    conn.recv(1)
        except OSError as exc:  # the same words as run and ingest (agent.wire.errors)
            return connect_error_text(exc, host=url.host, port=url.port, ca_file=tls.ca_file)
    return None


def broker_connect(mqtt: MqttConfig) -> Callable[[float], str | None]:
    """A one-off MQTT v5 connection with the configured TLS files, under its own client id.

    Its own id and a session that ends on disconnect, so the test never takes over the service's
    persistent session (queued officer commands would otherwise be delivered to the test client).
    """
    def connect(timeout: float) -> str | None:
        cfg = mqtt.model_copy(update={"client_id": f"{mqtt.client_id}-selftest", "session_expiry_s": 0})
        try:
            link = MqttLink(cfg, name="selftest-mqtt")
        except (OSError, ValueError, ssl.SSLError, AgentError) as exc:
            return str(exc) if isinstance(exc, AgentError) else f"cannot load the TLS files: {exc}"
        try:
            link.start()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if link.wait_connected(0.05):
                    return None
                if link.last_error is not None:
                    break
            reason = link.last_error or f"no CONNACK within {timeout:g} s"
        finally:
            link.close(offline=False)
        # TCP or TLS trouble is named precisely by the step-by-step probe; otherwise the broker's own reason
        return diagnose_broker(mqtt, timeout=min(timeout, 5.0)) or reason.replace("; retrying with backoff", "")

    return connect


def tls_note(uplink: UplinkConfig, key_dir: Path) -> str | None:
    """Whether the TLS client certificate belongs to the device key (the broker then knows the device)."""
    tls = uplink.mqtt.tls
    if tls is None or tls.cert_file is None:
        return "no client certificate is configured" if uplink.mqtt.url.tls else None
    try:
        cert = x509.load_pem_x509_certificate(Path(tls.cert_file).read_bytes())
        device = load_identity(key_dir)
    except (OSError, ValueError, AgentError):
        return None  # the broker or identity check reports the unreadable file
    if key_id_of(cert.public_key()) != device.key_id:  # type: ignore[arg-type]
        return f"the TLS client certificate {tls.cert_file} is not the device certificate"
    return None


def _broker_check(uplink: UplinkConfig | None, key_dir: Path, timeout: float) -> CheckResult:
    if uplink is None or not uplink.enabled:
        return check_broker(None, timeout)
    return check_broker(broker_connect(uplink.mqtt), timeout, target=uplink.mqtt.broker, tls=uplink.mqtt.url.tls,
                        note=tls_note(uplink, key_dir))


# -- disk --------------------------------------------------------------------------------------
def _media_bytes(vault_path: Path) -> int:
    """Media bytes counted from the files (when the running service holds the index)."""
    items = vault_path / "items"
    return sum(p.stat().st_size for p in items.rglob("*") if p.is_file() and p.suffix != ".rec") \
        if items.is_dir() else 0


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# -- what the service needs ----------------------------------------------------------------------
def preflight_check(cfg: AgentConfig) -> CheckResult:
    """The files and certificate checks of `check-config`: CN = device.id, EKUs, expiry, readable files."""
    from agent.device.preflight import preflight

    problems = preflight(cfg)
    fatal = [p.text for p in problems if p.fatal]
    if fatal:
        return CheckResult("config", "fail", "; ".join(fatal))
    if problems:
        return CheckResult("config", "warn", "; ".join(p.text for p in problems))
    return CheckResult("config", "pass", "files readable; certificate CN, extended key usages and validity fit")


# -- the command -------------------------------------------------------------------------------
def selftest_from_config(cfg: AgentConfig, *, clock: Clock | None = None, gps_wait: float = 20.0,
                         broker_timeout: float = 10.0, seal: bool = True) -> tuple[SelftestReport, str]:
    """Run every check with devices opened from ``cfg``; returns the report and a line about sealing."""
    from agent.device.sealer import Sealer
    from agent.device.sensors import Sensors
    from agent.evidence.vault import Vault
    from agent.gps.settings import open_gps
    from agent.gps.timequality import TimeQualityProbe

    clock = clock or SystemClock()
    quota = cfg.vault.quota_mb * 1024 * 1024
    vault: Vault | None = None
    vault_problem: str | None = None
    try:
        vault = Vault(cfg.vault.path, quota_bytes=quota)
    except VaultError as exc:
        vault_problem = str(exc)
    gps: GpsProvider | None = None
    gps_problem: str | None = None
    try:
        gps = open_gps(cfg.gps, clock)  # first: it gathers a fix while the camera is tested
    except AgentError as exc:
        gps_problem = str(exc)
    probe = TimeQualityProbe(clock, cfg.time)
    try:
        def camera() -> CheckResult:
            cls = backend_class(cfg.capture.backend)
            cam = cls(cfg.capture.to_settings(), clock)
            return check_camera(lambda: read_camera(cam), cam.describe(), simulated=cls.name == "synthetic")

        def gps_check() -> CheckResult:
            if gps is None:
                return CheckResult("gps", "fail", f"cannot open the GPS: {gps_problem}")
            return check_gps(gps, gps_wait)

        def disk() -> CheckResult:
            if vault is not None:
                return check_disk(vault.path, quota, vault.usage_bytes())
            if vault_problem is not None and IN_USE in vault_problem:
                return check_disk(_existing(cfg.vault.path), quota, _media_bytes(cfg.vault.path))
            return CheckResult("disk", "fail", vault_problem or "vault unavailable")

        report = run_selftest([
            camera, gps_check, lambda: check_clock(probe.read()),
            lambda: _broker_check(cfg.uplink, cfg.identity.key_dir, broker_timeout), disk,
            lambda: check_identity(lambda: load_identity(cfg.identity.key_dir), clock),
            lambda: preflight_check(cfg),
        ])
        if not seal:
            return report, "not sealed (--no-seal)"
        if vault is None:
            if vault_problem is not None and IN_USE in vault_problem:
                return report, (f"NOT sealed: {vault_problem}. The running service seals its own self-test: "
                                "send it the officer's signed MQTT command (evidence-officer cmd DEVICE selftest).")
            return report, f"NOT sealed: {vault_problem}"
        try:
            identity = load_identity(cfg.identity.key_dir)
            sealer = Sealer(vault, identity, device_id=cfg.device.id, site_id=cfg.device.site_id, clock=clock)
            sensors = Sensors(clock, gps, probe)
            sealer.start(sensors.moment(), reason="selftest")  # every writer process opens with a restart record
            item = sealer.seal("selftest", sensors.moment(), extra=report.as_record())
        except AgentError as exc:
            return report, f"NOT sealed: {exc}"
        report = replace(report, sealed={"seq": item.seq, "record_hash": item.record_hash})
        where = "; the agent service uploads it with the rest" if cfg.uplink is not None and cfg.uplink.enabled \
            else ""
        return report, f"sealed as seq {item.seq} ({item.record_hash[:16]}…) in {vault.path}{where}"
    finally:
        if gps is not None:
            gps.close()
        if vault is not None:
            vault.close()


def cmd_selftest(args: argparse.Namespace) -> int:
    cfg = load_config(Path(args.config))
    report, sealing = selftest_from_config(cfg, gps_wait=args.gps_wait, broker_timeout=args.broker_timeout,
                                           seal=not args.no_seal)
    if args.json:
        out: dict[str, Any] = {**report.as_record(), "device_id": cfg.device.id, "site_id": cfg.device.site_id,
                               "sealing": sealing}
        print(json.dumps(out, indent=2))
    else:
        print(f"self-test of device {cfg.device.id} at site {cfg.device.site_id}")
        print(report.table())
        print(sealing)
    sealed_wanted = not args.no_seal
    return 0 if report.passed and (report.sealed is not None or not sealed_wanted or IN_USE in sealing) else 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "selftest", help="pre-inspection equipment test: camera, GPS, clock, broker, disk, key (exit 1 on failure)")
    p.add_argument("--config", required=True, help="agent config (TOML)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--gps-wait", type=float, default=20.0, help="seconds to wait for a GPS fix (default 20)")
    p.add_argument("--broker-timeout", type=float, default=10.0,
                   help="seconds to wait for the broker to accept the connection (default 10)")
    p.add_argument("--no-seal", action="store_true", help="print only; do not seal the result into the vault")
    p.set_defaults(func=cmd_selftest)
